// Row softmax, one block per row.
extern "C" __global__ void softmax_rows(const float* x, float* out, unsigned rows, unsigned cols) {
    const float* row = x + (size_t)blockIdx.x * cols;
    float* dst = out + (size_t)blockIdx.x * cols;
    float m = NEG_MAX;
    for (unsigned j = threadIdx.x; j < cols; j += WG) m = fmaxf(m, row[j]);
    m = block_reduce(m, true);
    float s = 0.0f;
    for (unsigned j = threadIdx.x; j < cols; j += WG) s += expf(row[j] - m);
    s = block_reduce(s, false);
    for (unsigned j = threadIdx.x; j < cols; j += WG) dst[j] = expf(row[j] - m) / s;
}
