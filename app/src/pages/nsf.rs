//! NSF's page: model, factors, likelihood, kernel, inducing points, genes,
//! size factors and training; the result panels are the factors (a Show
//! choice per factor), the loadings heatmap and NSFH's spatial importance.

use leptos::prelude::*;
use tessera_core::models::nsf::analysis::{Nsf, NsfParams};

use crate::form::{choice, field, PageCtx};
use crate::protocol::CurveMeta;

pub struct Page;

impl crate::form::Page for Page {
    type A = Nsf;

    fn form(params: RwSignal<NsfParams>, _ctx: PageCtx) -> AnyView {
        view! {
            {choice(params, "Model", "NSF: spatially smooth factors (Gaussian processes); NSFH: spatial plus nonspatial factors, with each gene's spatial importance; PNMF: nonspatial factors only; RSF: real-valued spatial factors (rate exp of loadings × factors; loadings × factors under the Gaussian likelihood).",
                "nsf-model-select", &[("nsf", "NSF"), ("nsfh", "NSFH"), ("pnmf", "PNMF"), ("rsf", "RSF")],
                |p| p.model.clone(), |p, v| p.model = v)}
            {field(params, "Factors", "L, the number of factors (the paper uses 4 to 20).", "nsf-factors-input",
                |p| p.factors.to_string(), |p, v| p.factors = v.trim().parse().unwrap_or(0))}
            {field(params, "Spatial factors", "NSFH only: T of the L factors are spatial; empty: half, rounded up.", "nsf-spatial-input",
                |p| p.spatial.map(|t| t.to_string()).unwrap_or_default(), |p, v| p.spatial = v.trim().parse().ok())}
            {choice(params, "Likelihood", "poisson (the paper's default), nb (negative binomial, a dispersion per gene) or gaussian (normal with a scale per gene, on normalize_total + log1p of the counts — or X when the counts are in layers['counts'] — centred for RSF).",
                "nsf-likelihood-select", &[("poisson", "Poisson"), ("nb", "negative binomial"), ("gaussian", "Gaussian")],
                |p| p.likelihood.clone(), |p, v| p.likelihood = v)}
            {choice(params, "Kernel", "Covariance of the spatial factors: Matérn 3/2 (default) or exponentiated quadratic.",
                "nsf-kernel-select", &[("matern32", "Matérn 3/2"), ("rbf", "exponentiated quadratic")],
                |p| p.kernel.clone(), |p, v| p.kernel = v)}
            {field(params, "Inducing points", "M: k-means centres of the training locations (all of them when M covers them). Cost grows as M²–M³.", "nsf-inducing-input",
                |p| p.inducing.to_string(), |p, v| p.inducing = v.trim().parse().unwrap_or(0))}
            {field(params, "Genes", "The top genes by Poisson deviance (default 2000).", "nsf-genes-input",
                |p| p.genes.to_string(), |p, v| p.genes = v.trim().parse().unwrap_or(0))}
            {choice(params, "Size factors", "constant (1), mean (each spot's mean count) or scanpy (total over the median total).",
                "nsf-sz-select", &[("constant", "constant"), ("mean", "mean"), ("scanpy", "scanpy")],
                |p| p.size_factors.clone(), |p, v| p.size_factors = v)}
            {field(params, "Epochs", "At most this many; training stops earlier when the loss has converged (default 5000).", "nsf-epochs-input",
                |p| p.epochs.to_string(), |p, v| p.epochs = v.trim().parse().unwrap_or(0))}
            {field(params, "Seed", "Seed of the split, inducing points and draws: the same seed gives the same factors as tessera nsf.", "nsf-seed-input",
                |p| p.seed.to_string(), |p, v| p.seed = v.trim().parse().unwrap_or(0))}
        }
        .into_any()
    }

    /// The curve is the ELBO: name its last value.
    fn final_score(curves: &[CurveMeta]) -> Option<String> {
        let c = curves.first()?;
        Some(format!("final ELBO {:.4}", c.values.last()?))
    }
}
