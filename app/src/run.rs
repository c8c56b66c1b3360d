//! Picking an analysis, its inputs and parameters, and watching it run:
//! progress with an ETA, the live loss curve, and a Stop button. The form
//! fields are the analysis' page module's; the inputs, device, checks and
//! run are the same for every analysis and come from the registry.

use std::collections::HashSet;

use leptos::prelude::*;

use crate::figures::LossCurve;
use crate::form::PageCtx;
use crate::pages::Forms;
use crate::state::{send_run, stop_worker, CardView, SharedBridge, State};
use tessera_core::analysis::{self, Cards, Info, Input, Slot};
use tessera_core::share::{DeviceChoice, Inputs, Params, Run};

/// The demo and the kind of dataset a slot takes when the chosen analysis
/// does not say (so every slot keeps a sensible default).
fn slot_default(slot: Slot) -> (&'static str, bool) {
    match slot {
        Slot::Spatial => ("demo_spatial", true),
        Slot::Reference => ("demo_reference", false),
        Slot::Proteins => ("demo_proteins", true),
    }
}

fn input_of(info: &Info, slot: Slot) -> Option<&'static Input> {
    info.inputs.iter().find(|i| i.slot == slot)
}

#[component]
pub fn AnalysisPanel(
    bridge: StoredValue<SharedBridge, LocalStorage>,
    link_params: RwSignal<Option<(Params, DeviceChoice)>>,
) -> impl IntoView {
    let state = expect_context::<State>();
    let forms = Forms::default();
    let keys = [
        (Slot::Spatial, RwSignal::new(None::<u32>)),
        (Slot::Reference, RwSignal::new(None::<u32>)),
        (Slot::Proteins, RwSignal::new(None::<u32>)),
    ];
    let key = move |slot: Slot| keys.iter().find(|k| k.0 == slot).expect("every slot").1;
    let device = RwSignal::new(DeviceChoice::Webgpu);
    let analysis = RwSignal::new(analysis::ALL[0]().name.to_string());
    let info = Memo::new(move |_| analysis::find(&analysis.get()).unwrap_or_else(analysis::ALL[0]));
    Effect::new(move |_| {
        let Some((p, d)) = link_params.get() else {
            return;
        };
        device.set(d);
        analysis.set(p.name().into());
        forms.set(p);
    });
    // Defaults: the demo that fits the analysis, else the newest dataset
    // with coordinates is the spatial side and another one each other input.
    Effect::new(move |_| {
        let cards = state.cards.get();
        let info = info.get();
        let want =
            |slot: Slot| input_of(&info, slot).map_or(slot_default(slot), |i| (i.demo, i.spatial));
        let alive: HashSet<u32> = cards.iter().map(|c| c.key).collect();
        let demo_of = |k: Option<u32>| {
            cards
                .iter()
                .find(|c| Some(c.key) == k)
                .and_then(|c| c.card.demo.clone())
        };
        let has = |d: &str| cards.iter().any(|c| c.card.demo.as_deref() == Some(d));
        // A key is kept unless it is gone, or it is another analysis' demo
        // while this analysis' demo is open.
        let stale = |k: Option<u32>, want: &str| {
            k.is_none_or(|k| !alive.contains(&k))
                || demo_of(k).is_some_and(|d| d != want && has(want))
        };
        let (first, _) = want(Slot::Spatial);
        let sp_key = key(Slot::Spatial);
        if stale(sp_key.get_untracked(), first) {
            let pick = cards
                .iter()
                .find(|c| c.card.demo.as_deref() == Some(first))
                .or_else(|| cards.iter().find(|c| c.card.summary.spatial.is_some()));
            sp_key.set(pick.map(|c| c.key));
        }
        let sp = sp_key.get_untracked();
        for slot in [Slot::Reference, Slot::Proteins] {
            let (demo, spatial) = want(slot);
            let k = key(slot).get_untracked();
            if stale(k, demo) || k == sp {
                let pick = cards
                    .iter()
                    .find(|c| c.card.demo.as_deref() == Some(demo))
                    .or_else(|| {
                        cards.iter().find(|c| {
                            Some(c.key) != sp && (!spatial || c.card.summary.spatial.is_some())
                        })
                    });
                key(slot).set(pick.map(|c| c.key));
            }
        }
    });
    let card = move |slot: Slot| {
        let k = key(slot).get();
        state.cards.get().into_iter().find(|c| Some(c.key) == k)
    };
    let ctx = PageCtx {
        sp: Signal::derive(move || card(Slot::Spatial)),
        sc: Signal::derive(move || card(Slot::Reference)),
        prot: Signal::derive(move || card(Slot::Proteins)),
    };
    forms.follow(ctx);
    let checked = Memo::new(move |_| {
        let p = forms.params(&analysis.get()).ok_or("choose an analysis")?;
        let (sp, sc, prot) = (ctx.sp.get(), ctx.sc.get(), ctx.prot.get());
        let cards = Cards {
            sp: sp.as_ref().map(CardView::as_card),
            sc: sc.as_ref().map(CardView::as_card),
            prot: prot.as_ref().map(CardView::as_card),
        };
        p.check(&cards)
    });
    let run = move |_| {
        if checked.get_untracked().is_err() {
            return;
        }
        let Some(params) = untrack(|| forms.params(&analysis.get())) else {
            return;
        };
        let info = info.get_untracked();
        let source = |slot: Slot| {
            input_of(&info, slot)
                .and(untrack(|| card(slot)))
                .map(|c| c.source())
        };
        let Some(sp) = source(Slot::Spatial) else {
            return;
        };
        let run = Run {
            params,
            inputs: Inputs {
                sc: source(Slot::Reference),
                sp,
                prot: source(Slot::Proteins),
            },
            device: if info.gpu {
                device.get_untracked()
            } else {
                DeviceChoice::Cpu
            },
        };
        bridge.with_value(|b| send_run(state, b, run));
    };
    let stop = move |_| {
        let kept = state.running.get_untracked().and_then(|r| r.kept);
        bridge.with_value(|b| stop_worker(state, b));
        state.notice.set(Some(match kept {
            Some(at) => format!("Run stopped. Its checkpoint at {at} is kept: Run with the same inputs and settings goes on from there, even after a reload."),
            None => "Run stopped. The page is ready for another run.".into(),
        }));
    };
    let dataset_options = move |want_spatial: bool| {
        state
            .cards
            .get()
            .into_iter()
            .filter(move |c| !want_spatial || c.card.summary.spatial.is_some())
            .map(|c| {
                let s = &c.card.summary;
                let label = format!("#{} {} ({} × {})", c.key, s.source, s.n_obs, s.n_vars);
                view! { <option value=c.key.to_string()>{label}</option> }
            })
            .collect_view()
    };
    let input_select = move |i: &'static Input| {
        let k = key(i.slot);
        let testid = match i.slot {
            Slot::Spatial => "sp-select",
            Slot::Reference => "sc-select",
            Slot::Proteins => "prot-select",
        };
        view! {
            <label>
                <span>{i.label}</span>
                <select data-testid=testid prop:value=move || k.get().map(|k| k.to_string()).unwrap_or_default()
                    on:change=move |ev| k.set(event_target_value(&ev).parse().ok())>
                    {move || dataset_options(i.spatial)}
                </select>
                <small>{i.help}</small>
            </label>
        }
    };
    let running = move || state.running.get().is_some();

    view! {
        <section class="analysis">
            <h2>"Analysis"</h2>
            <div class="form">
                <label>
                    <span>"Method"</span>
                    <select data-testid="analysis-select" prop:value=move || analysis.get()
                        on:change=move |ev| analysis.set(event_target_value(&ev))>
                        {analysis::ALL.iter().map(|f| { let i = f(); view! { <option value=i.name>{i.title}</option> } }).collect_view()}
                    </select>
                    <small>{move || info.get().help}</small>
                </label>
                {move || info.get().inputs.iter().map(input_select).collect_view()}
                {move || forms.form(&analysis.get(), ctx)}
                <Show when=move || info.get().gpu>
                    <label>
                        <span>"Device"</span>
                        <select data-testid="device-select"
                            prop:value=move || if device.get() == DeviceChoice::Cpu { "cpu" } else { "webgpu" }
                            on:change=move |ev| device.set(if event_target_value(&ev) == "cpu" { DeviceChoice::Cpu } else { DeviceChoice::Webgpu })>
                            <option value="webgpu">"WebGPU (your graphics card)"</option>
                            <option value="cpu">"CPU"</option>
                        </select>
                        <small>"Without WebGPU the run falls back to the CPU, with a notice."</small>
                    </label>
                </Show>
            </div>
            <p class=move || if checked.get().is_ok() { "check ok" } else { "check warn" } data-testid="run-check">
                {move || match checked.get() { Ok(s) => s, Err(e) => e }}
            </p>
            <div class="actions">
                <button class="button" data-testid="run-button"
                    disabled=move || running() || checked.get().is_err() on:click=run>"Run"</button>
                <button class="button secondary" data-testid="stop-button"
                    disabled=move || !running() on:click=stop>"Stop"</button>
            </div>
            <Show when=move || state.notice.get().is_some()>
                <p class="notice" data-testid="notice">{move || state.notice.get().unwrap_or_default()}</p>
            </Show>
            <Show when=move || state.run_error.get().is_some()>
                <p class="error" data-testid="error" role="alert">{move || state.run_error.get().unwrap_or_default()}</p>
            </Show>
            <Show when=running>
                <Progress/>
            </Show>
        </section>
    }
}

#[component]
fn Progress() -> impl IntoView {
    let state = expect_context::<State>();
    let r = move || state.running.get();
    let text = move || {
        let Some(r) = r() else { return String::new() };
        let elapsed = (js_sys::Date::now() - r.started_ms) / 1e3;
        let unit = match r.stage.as_str() {
            "epochs" => Some("epoch"),
            "steps" => Some("step"),
            "reference epochs" => Some("reference epoch"),
            _ => None,
        };
        let ran = r.done - r.first_done.unwrap_or(0).min(r.done);
        let eta = if ran > 0 && unit.is_some() {
            let left = elapsed / ran as f64 * (r.total - r.done) as f64;
            format!(" · about {left:.0} s left")
        } else {
            String::new()
        };
        let loss = r
            .losses
            .last()
            .map(|(_, l)| format!(" · loss {l:.4}"))
            .unwrap_or_default();
        if let Some(unit) = unit {
            format!("{unit} {} of {}{eta}{loss}", r.done, r.total)
        } else {
            format!("{}…", r.stage)
        }
    };
    view! {
        <div class="progress">
            <progress data-testid="progress"
                max=move || r().map_or(1, |r| r.total.max(1)).to_string()
                value=move || r().map_or(0, |r| r.done).to_string()></progress>
            <span data-testid="progress-text">{text}</span>
            <Show when=move || r().is_some_and(|r| r.kept.is_some())>
                <small class="kept" data-testid="progress-kept">{move || r().and_then(|r| r.kept).map(|at| format!("checkpoint kept at {at}: Stop, a reload or a closed tab loses no more than this"))}</small>
            </Show>
            <LossCurve points=Signal::derive(move || r().map(|r| r.losses).unwrap_or_default())/>
        </div>
    }
}
