// Cosine of matching rows (axis 0) or columns (axis 1) with norms clamped at
// 1e-8, and, when with_grad, weight * d cos / d a = w * (b / (|a||b|) - cos * a / |a|^2).
// One block per output; serves the cosine and cosine_grad ops.
extern "C" __global__ void cosine_grad(const float* a, const float* b, float* cos, float* grad, unsigned rows, unsigned cols, unsigned axis, float weight, unsigned with_grad) {
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
    float na = fmaxf(sqrtf(aa), 1e-8f), nb = fmaxf(sqrtf(bb), 1e-8f);
    float c = ab / (na * nb);
    float cb = weight / (na * nb), ca = -weight * c / (na * na);
    if (threadIdx.x == 0) cos[o] = c;
    if (!with_grad) return;
    for (unsigned i = threadIdx.x; i < inner; i += WG) {
        size_t k = axis == 0 ? (size_t)o * cols + i : (size_t)i * cols + o;
        grad[k] = cb * b[k] + ca * a[k];
    }
}
