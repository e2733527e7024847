"""`minigpt evaluate` and `minigpt perplexity`: zero- and few-shot scores of a checkpoint on a labelled task,
against chance, and its loss on a text in sliding windows."""
import json

from minigpt.cli.generate import load_language_model
from minigpt.data import atomic_write_bytes, check_output_file


def cmd_evaluate(args):
    from minigpt.prompting import evaluate_task, resolve_template
    from minigpt.prompting.evaluate import check_scoring
    from minigpt.tasks import TASK_NAMES, load_task

    if args.task not in TASK_NAMES:
        raise ValueError(f"unknown task {args.task!r}; choose one of: {', '.join(TASK_NAMES)}")
    if args.shots < 0:
        raise ValueError(f"--shots must be >= 0, got {args.shots}")
    check_output_file(args.metrics_out, "--metrics-out", reads=[args.checkpoint, args.data, args.template_file])
    template = resolve_template(args.task, prompt=unescape(args.template), answer=unescape(args.answer),
                                verbalizer=args.verbalizer, separator=unescape(args.separator),
                                path=args.template_file)
    task = load_task(args.task, data=args.data, seed=args.seed)
    model, tok, path, info = load_language_model(args.checkpoint, args.backend, "the prompts")
    kind = "" if task.shape == args.task else f" ({task.shape})"
    scoring = check_scoring(args.scoring, task.shape == "completion")
    print(f"minigpt: {args.task}{kind}, {args.shots}-shot, scoring {scoring}; checkpoint {path} "
          f"(step {info.get('step')}), context {model.config.block_size} tokens, backend {args.backend}")
    result = evaluate_task(model, tok, task, template, shots=args.shots, seed=args.seed, max_eval=args.max_eval,
                           scoring=scoring, skip_unencodable=args.skip_unencodable,
                           progress=not args.no_progress)
    result.update(checkpoint=str(path), step=info.get("step"))
    if task.shape == "completion":
        print(f"the first prompt:\n{result['example_prompt']!r}\nanswer: {result['example_candidates'][0]!r}, "
              f"the model wrote: {result['example_prediction']!r}")
    else:
        print(f"the first prompt:\n{result['example_prompt']!r}\ncandidates: {result['example_candidates']}")
    print(evaluation_summary(result, task.metrics))
    if args.metrics_out:
        atomic_write_bytes(args.metrics_out, json.dumps(result, indent=1).encode())
        print(f"metrics: {args.metrics_out}")
    else:
        print(json.dumps({k: v for k, v in result.items() if not k.startswith("example_")}, indent=1))


def unescape(text):
    """A command-line template with \\n and \\t written as two characters, as shells pass them, made real."""
    return None if text is None else text.replace("\\n", "\n").replace("\\t", "\t")


def evaluation_summary(result, metrics):
    """A few lines for people: the headline metric against chance, and what fitting the context cost."""
    head = metrics[0]
    lines = [f"{result['task']}: {head} {result[head]:.4f} on {result['n_eval']} examples ({result['shots']}-shot)"]
    chance = result["chance"]
    if "majority_answer" in chance:
        lines.append(f"chance: {head} {chance['majority'][head]:.4f} always answering {chance['majority_answer']!r} "
                     f"(the commonest {'training' if chance['majority_from'] == 'train' else 'dev'} answer)")
        lines.append(f"the answers' perplexity under the model: {result['answer_perplexity']:.2f} "
                     f"({result['answer_nats_per_token']:.3f} nats per answer token)")
    if "uniform_accuracy" in chance:
        line = f"chance: {chance['uniform_accuracy']:.4f} accuracy guessing uniformly"
        if "majority" in chance:
            line += (f", {head} {chance['majority'][head]:.4f} always answering {chance['majority_class']!r} "
                     "(the commonest training class)")
        if chance.get("commonest_here_class") not in (None, chance.get("majority_class")):
            line += (f", {head} {chance['commonest_here'][head]:.4f} always answering "
                     f"{chance['commonest_here_class']!r} (the commonest class of these examples)")
        lines.append(line)
    if result["k_shrunk"]:
        lines.append(f"k had to shrink for {result['k_shrunk']} of {result['n_eval']} examples to fit the context "
                     f"(mean k {result['k_mean']:.2f} of {result['shots']})")
    if result["prompt_truncated"]:
        lines.append(f"{result['prompt_truncated']} prompts were cut from the left to fit the context")
    if result["answers_cut"]:
        lines.append(f"{result['answers_cut']} examples had answers longer than the context allows: they were "
                     "compared on their beginnings")
    if result["skipped"]:
        lines.append(f"{result['skipped']} examples left out: the tokenizer cannot encode them "
                     f"(the first: {result['first_skipped']})")
    return "\n".join(lines)


class WindowProgress:
    """A tqdm bar over the windows of `minigpt perplexity`, made when the first batch reports the total."""

    def __init__(self, enabled):
        self.enabled, self.bar = enabled, None

    def update(self, done, total):
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc="windows", dynamic_ncols=True)
        self.bar.update(done - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def cmd_perplexity(args):
    from minigpt.corpus import shakespeare_splits
    from minigpt.data import read_text
    from minigpt.prompting import UnencodableText, score_text
    from minigpt.prompting.perplexity import default_stride

    if not args.text.strip():  # read_text("") would read every .txt file of the current folder
        raise ValueError("--text must name a file or folder, or be 'shakespeare'")
    check_output_file(args.metrics_out, "--metrics-out",
                      reads=[args.checkpoint, args.text if args.text != "shakespeare" else None])
    model, tok, path, info = load_language_model(args.checkpoint, args.backend, "the text")
    if args.eot_prefix and tok.eot_token is None:
        raise ValueError(f"--eot-prefix: the tokenizer of {path} has no <|endoftext|> token")
    # the default run's validation split: six plays the model never trained on
    text = shakespeare_splits()[1] if args.text == "shakespeare" else read_text(args.text)
    if args.max_chars is not None:
        text = text[:args.max_chars]
    T = model.config.block_size
    stride = args.stride if args.stride is not None else default_stride(T)
    if stride > T:
        raise ValueError(f"--stride must be at most the context length {T}, got {stride}")
    print(f"minigpt: scoring {len(text):,} characters of {args.text} with checkpoint {path} (step {info.get('step')}), "
          f"context {T} tokens, stride {stride}, backend {args.backend}")
    bar = WindowProgress(enabled=not args.no_progress)
    try:
        result = score_text(model, tok, text, stride=stride, progress=bar.update, eot_prefix=args.eot_prefix)
    except UnencodableText as e:
        raise ValueError(f"{args.text}: {e}") from None
    finally:
        bar.close()
    result.update(text=str(args.text), checkpoint=str(path), step=info.get("step"), block_size=T)
    print(f"{result['tokens']:,} tokens scored ({result['chars']:,} characters): loss {result['loss']:.4f} nats per "
          f"token, perplexity {result['perplexity']:.3f}, {result['bits_per_char']:.4f} bits per character, "
          f"{result['bits_per_byte']:.4f} bits per byte")
    if args.metrics_out:
        atomic_write_bytes(args.metrics_out, json.dumps(result, indent=1).encode())
        print(f"metrics: {args.metrics_out}")
    else:
        print(json.dumps(result, indent=1))
