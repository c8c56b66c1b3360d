// NB log-likelihood and gradients summed over groups of rows that share a mean,
// from the non-zero counts only (Device::nb_grouped); one thread per (group, column).
extern "C" __global__ void nb_grouped(const float* x, const unsigned* seg, const float* count, const float* mu,
                                      const float* theta, float* ll, float* grad_mu, float* grad_theta,
                                      unsigned groups, unsigned cols, unsigned n_theta) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)groups * cols) return;
    float n = count[i / cols], m = mu[i], t = theta[i % n_theta];
    float inv = 1.0f / (t + m), lt = logf(t * inv);
    float sx = 0.0f, lg = 0.0f, dg = 0.0f;
    for (unsigned e = seg[i]; e < seg[i + 1]; e++) {
        float xv = x[e];
        sx += xv;
        // Small whole counts as short sums, which keep f32 precision.
        if (xv < 16.0f && xv == floorf(xv)) {
            for (float j = 0.0f; j < xv; j += 1.0f) {
                lg += logf((t + j) / (j + 1.0f));
                dg += 1.0f / (t + j);
            }
        } else {
            lg += t_lgamma(xv + t) - t_lgamma(t) - t_lgamma(xv + 1.0f);
            dg += t_digamma(xv + t) - t_digamma(t);
        }
    }
    float lm = sx > 0.0f ? logf(m * inv) : 0.0f;
    ll[i] = lg + n * t * lt + sx * lm;
    grad_mu[i] = sx / m - (sx + n * t) * inv;
    grad_theta[i] = dg + n * (lt + 1.0f) - (sx + n * t) * inv;
}
