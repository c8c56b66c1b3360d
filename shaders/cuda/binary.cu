// out = a op b, b broadcast by index modulo nb. op: 0 add, 1 sub, 2 mul, 3 div.
extern "C" __global__ void binary(const float* a, const float* b, float* out, unsigned n, unsigned nb, unsigned op) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = a[i], y = b[i % nb];
    out[i] = op == 0 ? x + y : op == 1 ? x - y : op == 2 ? x * y : x / y;
}
