"""`minigpt generate`: a checkpoint's language model and tokenizer, a prompt, and the new text printed as
it comes."""


def print_stream(tokenizer, stream, prompt_ids=(), prompt_text=""):
    """Print prompt_text, then the new text as tokens come. The new text is what decoding the prompt's ids and
    the tokens together adds to the prompt's ids alone: GPT-1's tokenizer writes the space between two words
    from the first one's ending, which decoding the new tokens alone would lose ("hello he" + "he" gave
    "hello hehe"), and a BPE token can end mid-character (shown once whole). The prompt waits for the first
    token, so an error in the first step prints nothing."""
    prompt_ids, ids = list(prompt_ids), []
    base = tokenizer.decode(prompt_ids)
    shown = len(base)
    # GPT-1's decoding drops the prompt's trailing space and writes it again before the next word: the prompt
    # as typed has printed it already
    space_already_printed = prompt_text[-1:].isspace() and not base[-1:].isspace()
    for token in stream:
        if prompt_text:
            print(prompt_text, end="")
            prompt_text = ""
        ids.append(token)
        text = tokenizer.decode(prompt_ids + ids)
        if space_already_printed and text[shown:shown + 1] == " ":
            shown += 1
        space_already_printed = False
        if not text.endswith("\ufffd"):
            print(text[shown:], end="", flush=True)
            shown = len(text)
    print(prompt_text + tokenizer.decode(prompt_ids + ids)[shown:])


def load_language_model(checkpoint, backend, needs):
    """(model, tokenizer, checkpoint folder, checkpoint.json) of a pre-trained checkpoint or run folder (its latest),
    which must hold a tokenizer that fits the model. needs: what the tokenizer is for, for the error message."""
    from minigpt.checkpoint import load_model, resolve_checkpoint
    from minigpt.tokenizer import tokenizer_from_dict

    path = resolve_checkpoint(checkpoint)
    model, info = load_model(path, backend=backend)
    if not info.get("tokenizer"):
        raise ValueError(f"{path} has no tokenizer saved; cannot encode {needs}")
    tok = tokenizer_from_dict(info["tokenizer"])
    if tok.vocab_size > model.config.vocab_size:  # its last ids would index past the embedding table
        raise ValueError(f"{path}: the tokenizer has {tok.vocab_size:,} tokens, the model's embedding only "
                         f"{model.config.vocab_size:,} rows; the checkpoint's files do not belong together")
    return model, tok, path, info


def start_of_text(tok, prompt_text):
    """The prompt of a text that encodes to no tokens: <|endoftext|>, as GPT-2's unconditional samples start,
    where the tokenizer has it; else an error that says why there is nothing (empty, or whitespace GPT-1's
    tokenizer drops)."""
    if tok.eot_token is not None:
        return [tok.eot_token]
    if not prompt_text:
        raise ValueError("an empty --prompt starts from <|endoftext|>, which this checkpoint's tokenizer does not "
                         "have; give a --prompt")
    given = "the default prompt, a newline," if prompt_text == "\n" else f"--prompt {prompt_text!r}"
    raise ValueError(f"{given} encodes to no tokens: this checkpoint's tokenizer drops whitespace and has no "
                     "<|endoftext|> to start from; give a --prompt with some text")


def cmd_generate(args):
    from minigpt.generate import generate
    from minigpt.prompting.evaluate import encodes

    model, tok, _, _ = load_language_model(args.checkpoint, args.backend, "a text prompt")
    try:
        args.prompt.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 reach Python as lone surrogates
        raise ValueError("--prompt is not valid UTF-8 text (check the terminal's or the file's encoding)") from None
    if args.prompt == "\n" and not encodes(tok, "\n"):
        raise ValueError("the default prompt is a newline, which this checkpoint's tokenizer cannot encode (its "
                         "text had none); give one with --prompt")
    prompt = tok.encode(args.prompt) or start_of_text(tok, args.prompt)
    if len(prompt) > model.config.block_size:
        raise ValueError(f"the prompt is {len(prompt)} tokens, longer than the model's context of "
                         f"{model.config.block_size}; shorten it")
    if args.greedy and args.num_samples > 1:
        raise ValueError("--greedy takes no random choices, so its --num-samples samples would be one text repeated")
    for i in range(args.num_samples):
        if i > 0:
            print("-" * 16)
        # sample i draws with seed + i, so any one of them is reproduced alone by --seed (seed + i)
        stream = generate(model, prompt, args.max_new_tokens, greedy=args.greedy, temperature=args.temperature,
                          top_k=args.top_k, top_p=args.top_p, seed=args.seed + i, stop_token=tok.eot_token,
                          use_cache=not args.no_cache)  # checks its settings before any output
        print_stream(tok, stream, prompt, prompt_text=args.prompt)
