// Backward pass of the row softmax, one block per row: dx = p * (dp - sum_j p_j dp_j).
extern "C" __global__ void softmax_backward(const float* p, const float* dp, float* dx, unsigned rows, unsigned cols) {
    size_t base = (size_t)blockIdx.x * cols;
    float s = 0.0f;
    for (unsigned j = threadIdx.x; j < cols; j += WG) s += p[base + j] * dp[base + j];
    s = block_reduce(s, false);
    for (unsigned j = threadIdx.x; j < cols; j += WG) dx[base + j] = p[base + j] * (dp[base + j] - s);
}
