//! What every analysis page builds its form from: the [`Page`] an
//! analysis' page module implements, the context a form gets (the chosen
//! dataset cards), and the form widgets bound to fields of its parameters.

use leptos::prelude::*;
use tessera_core::analysis::{checks, Analysis};

use crate::protocol::CurveMeta;
use crate::state::CardView;

/// An analysis' page: its form fields and the parts of its results no
/// other analysis shows. One module per analysis under `pages/`.
pub trait Page {
    type A: Analysis;

    /// The form fields below the input pickers.
    fn form(params: RwSignal<<Self::A as Analysis>::Params>, ctx: PageCtx) -> AnyView;

    /// Effects that keep the parameters in step with the chosen datasets
    /// (a label column guessed, a demo's settings), set up once for the
    /// page's life, shown or not.
    fn follow(_params: RwSignal<<Self::A as Analysis>::Params>, _ctx: PageCtx) {}

    /// The line under a result's loss curve.
    fn final_score(curves: &[CurveMeta]) -> Option<String> {
        let c = curves.first()?;
        Some(format!("final {} {:.4}", c.name, c.values.last()?))
    }

    /// The caption of line panels.
    fn lines_caption() -> &'static str {
        ""
    }
}

/// The dataset cards chosen for a run's inputs.
#[derive(Clone, Copy)]
pub struct PageCtx {
    pub sp: Signal<Option<CardView>>,
    pub sc: Signal<Option<CardView>>,
    pub prot: Signal<Option<CardView>>,
}

/// A card's categorical obs columns with their category counts.
pub fn categorical_columns(card: &CardView) -> Vec<(String, usize)> {
    checks::categorical_columns(&card.as_card())
}

/// The likeliest cell-type column among categorical ones.
pub fn guess_label(cols: &[(String, usize)]) -> Option<String> {
    [
        "cell_type",
        "celltype",
        "cell_types",
        "cluster",
        "annotation",
        "subclass",
        "phenotype",
    ]
    .iter()
    .find_map(|g| cols.iter().find(|(c, _)| c.eq_ignore_ascii_case(g)))
    .or(cols.first())
    .map(|(c, _)| c.clone())
}

/// The categorical columns of a card as options of a select.
pub fn column_options(card: Signal<Option<CardView>>) -> impl IntoView {
    card.get()
        .map(|c| categorical_columns(&c))
        .unwrap_or_default()
        .into_iter()
        .map(|(c, n)| {
            let label = format!("{c} ({n} categories)");
            view! { <option value=c.clone()>{label}</option> }
        })
        .collect_view()
}

/// Guesses a label column into the parameters whenever the card changes
/// and the current choice is not one of its columns.
pub fn follow_label<T: Clone + Send + Sync + 'static>(
    params: RwSignal<T>,
    card: Signal<Option<CardView>>,
    get: fn(&T) -> Option<String>,
    set: fn(&mut T, Option<String>),
) {
    Effect::new(move |_| {
        let Some(c) = card.get() else { return };
        let cols = categorical_columns(&c);
        let known = params
            .with_untracked(get)
            .is_some_and(|k| cols.iter().any(|(c, _)| *c == k));
        if !known {
            let g = guess_label(&cols);
            params.update(|p| set(p, g));
        }
    });
}

/// The obs column with the cell types, from the spatial data's categoricals.
pub fn key_select<T: Clone + Send + Sync + 'static>(
    params: RwSignal<T>,
    sp: Signal<Option<CardView>>,
    get: fn(&T) -> String,
    set: fn(&mut T, String),
) -> impl IntoView {
    view! {
        <label>
            <span>"Cell-type column"</span>
            <select data-testid="cluster-key-select" prop:value=move || params.with(get)
                on:change=move |ev| { let v = event_target_value(&ev); params.update(|p| set(p, v)); }>
                {move || column_options(sp)}
            </select>
            <small>"cluster_key: the obs column whose categories are compared."</small>
        </label>
    }
}

/// Reads one form value as text and writes it back from text.
pub type Accessors<T> = (fn(&T) -> String, fn(&mut T, &str));

/// squidpy's `spatial_neighbors` choices, shared by the graph-based forms.
pub fn graph_fields<T: Clone + Send + Sync + 'static>(
    params: RwSignal<T>,
    get: fn(&T) -> String,
    set: fn(&mut T, String),
    neighs: Accessors<T>,
    radius: Accessors<T>,
) -> impl IntoView {
    view! {
        <label>
            <span>"Neighbour graph"</span>
            <select data-testid="graph-select" prop:value=move || params.with(get)
                on:change=move |ev| { let v = event_target_value(&ev); params.update(|p| set(p, v)); }>
                <option value="knn">"k nearest neighbours"</option>
                <option value="delaunay">"Delaunay triangulation"</option>
                <option value="radius">"radius"</option>
                <option value="grid">"Visium grid"</option>
            </select>
            <small>"squidpy's spatial_neighbors: coord_type generic (knn, delaunay, radius) or grid."</small>
        </label>
        {field(params, "n_neighs", "Neighbours per cell (knn) or per spot (grid); default 6.", "n-neighs-input", neighs.0, neighs.1)}
        {field(params, "Radius", "Radius graph only, in coordinate units.", "radius-input", radius.0, radius.1)}
    }
}

/// A select bound to one text value of a form's parameters.
pub fn choice<T: Clone + Send + Sync + 'static>(
    params: RwSignal<T>,
    label: &'static str,
    help: &'static str,
    testid: &'static str,
    options: &'static [(&'static str, &'static str)],
    get: fn(&T) -> String,
    set: fn(&mut T, String),
) -> impl IntoView {
    view! {
        <label title=help>
            <span>{label}</span>
            <select data-testid=testid prop:value=move || params.with(get)
                on:change=move |ev| { let v = event_target_value(&ev); params.update(|p| set(p, v)); }>
                {options.iter().map(|(v, l)| view! { <option value=*v>{*l}</option> }).collect_view()}
            </select>
            <small>{help}</small>
        </label>
    }
}

/// A text field bound to one value of a form's parameters.
pub fn field<T: Clone + Send + Sync + 'static>(
    params: RwSignal<T>,
    label: &'static str,
    help: &'static str,
    testid: &'static str,
    get: fn(&T) -> String,
    set: fn(&mut T, &str),
) -> impl IntoView {
    view! {
        <label title=help>
            <span>{label}</span>
            <input data-testid=testid prop:value=move || params.with(get)
                on:change=move |ev| { let v = event_target_value(&ev); params.update(|p| set(p, &v)); } />
            <small>{help}</small>
        </label>
    }
}
