// One block per output: op 0 sum, 1 max, 2 logsumexp; axis 0 rows, 1 cols.
extern "C" __global__ void reduce(const float* x, float* out, unsigned rows, unsigned cols, unsigned op, unsigned axis) {
    unsigned o = blockIdx.x;
    unsigned inner = axis == 0 ? cols : rows;
    float m = NEG_MAX;
    for (unsigned i = threadIdx.x; i < inner; i += WG) m = fmaxf(m, axis == 0 ? x[(size_t)o * cols + i] : x[(size_t)i * cols + o]);
    m = block_reduce(m, true);
    if (op == 1) { if (threadIdx.x == 0) out[o] = m; return; }
    float s = 0.0f;
    for (unsigned i = threadIdx.x; i < inner; i += WG) {
        float v = axis == 0 ? x[(size_t)o * cols + i] : x[(size_t)i * cols + o];
        s += op == 2 ? expf(v - m) : v;
    }
    s = block_reduce(s, false);
    if (threadIdx.x == 0) out[o] = op == 2 ? m + logf(s) : s;
}
