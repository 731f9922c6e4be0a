/* libFuzzer target for the ONNX loader and executor: any bytes go through
 * dp_model_open_memory(); a model that opens is run once on a small zero
 * input (dims capped) so shape inference, planning and the kernels see the
 * fuzzed graph too. */
#include "doppel/model.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ELEMS (1 << 16)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dp_model_params p = dp_model_default_params();
    p.threads = 1;
    dp_model *m = NULL;
    if (dp_model_open_memory(data, size, &p, &m) != 0) return 0;
    dp_model_info info;
    dp_model_describe(m, &info);
    dp_tensor in[8];
    void *bufs[8] = {0};
    size_t n = info.n_inputs < 8 ? info.n_inputs : 0;
    int ok = n == info.n_inputs;
    for (size_t i = 0; i < n && ok; i++) {
        if (dp_model_input(m, i, &in[i])) {
            ok = 0;
            break;
        }
        int64_t cnt = 1;
        for (int d = 0; d < in[i].ndim; d++) {
            if (in[i].dims[d] < 0) in[i].dims[d] = d == 0 ? 1 : 4;
            if (in[i].dims[d] > MAX_ELEMS || (in[i].dims[d] && cnt > MAX_ELEMS / in[i].dims[d])) {
                ok = 0;
                break;
            }
            cnt *= in[i].dims[d];
        }
        if (!ok || cnt > MAX_ELEMS) {
            ok = 0;
            break;
        }
        bufs[i] = calloc((size_t)cnt + 1, 8);
        in[i].data = bufs[i];
        in[i].name = NULL;
    }
    if (ok && dp_model_run(m, in, n) == 0) {
        dp_tensor out;
        for (size_t k = 0; k < info.n_outputs; k++) {
            dp_tensor oi;
            if (dp_model_output_info(m, k, &oi) == 0) dp_model_output(m, oi.name, &out);
        }
    }
    for (size_t i = 0; i < 8; i++)
        free(bufs[i]);
    dp_model_free(m);
    return 0;
}
