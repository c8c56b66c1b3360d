// Cosine similarity of matching rows (axis 0) or columns (axis 1); one block per output.
extern "C" __global__ void cosine(const float* a, const float* b, float* out, unsigned rows, unsigned cols, unsigned axis) {
    unsigned o = blockIdx.x;
    unsigned inner = axis == 0 ? cols : rows;
    float ab = 0.0f, aa = 0.0f, bb = 0.0f;
    for (unsigned i = threadIdx.x; i < inner; i += WG) {
        size_t k = axis == 0 ? (size_t)o * cols + i : (size_t)i * cols + o;
        ab += a[k] * b[k];
        aa += a[k] * a[k];
        bb += b[k] * b[k];
    }
    ab = block_reduce(ab, false);
    aa = block_reduce(aa, false);
    bb = block_reduce(bb, false);
    if (threadIdx.x == 0) out[o] = ab / fmaxf(sqrtf(aa) * sqrtf(bb), 1e-12f);
}
