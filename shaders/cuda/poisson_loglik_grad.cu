// Poisson log-likelihood per row and its gradient; one block per row.
extern "C" __global__ void poisson_loglik_grad(const float* x, const float* mu, float* ll_rows, float* grad_mu,
                                               unsigned rows, unsigned cols) {
    unsigned r = blockIdx.x;
    float acc = 0.0f;
    for (unsigned j = threadIdx.x; j < cols; j += WG) {
        size_t i = (size_t)r * cols + j;
        float xv = x[i], m = mu[i];
        acc += xv * logf(m) - m - t_lgamma(xv + 1.0f);
        grad_mu[i] = xv / m - 1.0f;
    }
    acc = block_reduce(acc, false);
    if (threadIdx.x == 0) ll_rows[r] = acc;
}
