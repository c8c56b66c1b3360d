// NB (Gamma-Poisson) log-likelihood per row fused with both gradients; one block per row.
extern "C" __global__ void nb_loglik_grad(const float* x, const float* mu, const float* theta, float* ll_rows,
                                          float* grad_mu, float* grad_theta, unsigned rows, unsigned cols, unsigned n_theta) {
    unsigned r = blockIdx.x;
    float acc = 0.0f;
    for (unsigned j = threadIdx.x; j < cols; j += WG) {
        size_t i = (size_t)r * cols + j;
        float xv = x[i], m = mu[i], t = theta[i % n_theta];
        float lt = logf(t / (t + m));
        acc += t_lgamma(xv + t) - t_lgamma(t) - t_lgamma(xv + 1.0f) + t * lt + xv * logf(m / (t + m));
        grad_mu[i] = xv / m - (xv + t) / (t + m);
        grad_theta[i] = t_digamma(xv + t) - t_digamma(t) + lt + 1.0f - (xv + t) / (t + m);
    }
    acc = block_reduce(acc, false);
    if (threadIdx.x == 0) ll_rows[r] = acc;
}
