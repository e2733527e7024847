// Times llm.c's CPU training step on a checkpoint and tokens that benchmarks/bench_llmc.py wrote.
//
// llm.c's train_gpt2.c is included as it is, with TESTING defined so that its own main() is left out
// (as llm.c's test_gpt2.c does); nothing of it is copied here or changed. Build (bench_llmc.py does):
//   gcc -Ofast -march=native -fopenmp -DOMP -I PATH/TO/llm.c benchmarks/llmc_step.c -o llmc_step -lm
//
// usage: llmc_step CHECKPOINT TOKENS B T STEPS WARMUP
//   TOKENS: int32 batches of B rows of T + 1 tokens, used in turn (inputs = row[:T], targets = row[1:]).
// Each step is llm.c's own: gpt2_forward with targets, gpt2_zero_grad, gpt2_backward, gpt2_update with the
// settings of its main() (lr 1e-4, betas 0.9 / 0.999, eps 1e-8, no weight decay; no clipping).
// Prints one line, "RESULT {json}": the loss of every step (warm-up included) and the milliseconds of each
// step after the warm-up.
#define TESTING
#include "train_gpt2.c"

int main(int argc, char** argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s CHECKPOINT TOKENS B T STEPS WARMUP\n", argv[0]);
        return 2;
    }
    const int B = atoi(argv[3]), T = atoi(argv[4]), steps = atoi(argv[5]), warmup = atoi(argv[6]);
    GPT2 model;
    gpt2_build_from_checkpoint(&model, argv[1]);

    FILE* f = fopenCheck(argv[2], "rb");
    fseekCheck(f, 0, SEEK_END);
    const long row = T + 1, batch = (long)B * row, n_batches = ftell(f) / (long)sizeof(int) / batch;
    fseekCheck(f, 0, SEEK_SET);
    if (n_batches < 1) {
        fprintf(stderr, "%s holds less than one batch of %d x %d tokens\n", argv[2], B, T + 1);
        return 2;
    }
    int* tokens = (int*)mallocCheck(n_batches * batch * sizeof(int));
    freadCheck(tokens, sizeof(int), n_batches * batch, f);
    fcloseCheck(f);
    int* inputs = (int*)mallocCheck((size_t)B * T * sizeof(int));
    int* targets = (int*)mallocCheck((size_t)B * T * sizeof(int));

    // llm.c prints as it allocates (in the first forward and backward), so the results wait for the end
    double* ms = (double*)mallocCheck((steps + warmup + 1) * sizeof(double));
    float* losses = (float*)mallocCheck((steps + warmup + 1) * sizeof(float));
    for (int step = 0; step < warmup + steps; step++) {
        const int* rows = tokens + (step % n_batches) * batch;  // (B, T + 1)
        for (int b = 0; b < B; b++) {
            memcpy(inputs + b * T, rows + b * row, T * sizeof(int));
            memcpy(targets + b * T, rows + b * row + 1, T * sizeof(int));
        }
        struct timespec start, end;
        clock_gettime(CLOCK_MONOTONIC, &start);
        gpt2_forward(&model, inputs, targets, B, T);
        gpt2_zero_grad(&model);
        gpt2_backward(&model);
        gpt2_update(&model, 1e-4f, 0.9f, 0.999f, 1e-8f, 0.0f, step + 1);
        clock_gettime(CLOCK_MONOTONIC, &end);
        ms[step] = (end.tv_sec - start.tv_sec) * 1e3 + (end.tv_nsec - start.tv_nsec) / 1e6;
        losses[step] = model.mean_loss;
    }
    printf("RESULT {\"losses\": [");
    for (int step = 0; step < warmup + steps; step++) { printf("%s%.9g", step ? ", " : "", losses[step]); }
    printf("], \"step_ms\": [");
    for (int step = warmup; step < warmup + steps; step++) { printf("%s%.3f", step > warmup ? ", " : "", ms[step]); }
    printf("]}\n");
    free(ms);
    free(losses);
    free(tokens);
    free(inputs);
    free(targets);
    gpt2_free(&model);
    return 0;
}
