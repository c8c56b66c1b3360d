// out = a op b, b broadcast by index modulo nb, or one b per row of length
// row_len when row_len > 0. op: 0 add, 1 sub, 2 mul, 3 div, 4 max.
extern "C" __global__ void binary(const float* a, const float* b, float* out, unsigned n, unsigned nb, unsigned op, unsigned row_len) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = a[i], y = row_len > 0 ? b[i / row_len] : b[i % nb];
    out[i] = op == 0 ? x + y : op == 1 ? x - y : op == 2 ? x * y : op == 3 ? x / y : fmaxf(x, y);
}
