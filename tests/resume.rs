//! A run stopped in a tab goes on from the checkpoint the page kept. Through
//! the tab's entry point (`session::run`), a run of NSF, RESOLVI or
//! cell2location that starts from the second checkpoint a run left (epoch
//! 20; cell2location's mapping at step 500), as bytes the page stores, ends
//! with that run's results, bit for bit, and says where it started.

use std::cell::RefCell;
use std::rc::Rc;

use tessera_core::analysis::Data;
use tessera_core::bundle::Results;
use tessera_core::compute::cpu::Cpu;
use tessera_core::models::checkpoint::{attempt, Checkpoint, Kept};
use tessera_core::models::nsf::run::{run_kept, Model, Options};
use tessera_core::session;
use tessera_core::share::{DeviceChoice, Inputs, Params, Run, Source};

/// The run of `params` on the demo tissue, and the checkpoints it showed.
fn run(params: &str, from: Option<Checkpoint>) -> Result<(Results, Vec<Checkpoint>), String> {
    let run = Run {
        params: serde_json::from_str::<Params>(params).unwrap(),
        inputs: Inputs {
            sp: Source::Demo,
            sc: params.contains("cell2location").then_some(Source::Demo),
            prot: None,
        },
        device: DeviceChoice::Cpu,
    };
    let (spatial, reference) = tessera_core::demo::demo_pair(Default::default());
    let sc = params
        .contains("cell2location")
        .then(|| ("demo_reference".to_string(), reference));
    let seen = Rc::new(RefCell::new(vec![]));
    let into = seen.clone();
    let data = Data {
        sp: ("demo_spatial".into(), spatial),
        sc,
        kept: Kept {
            from,
            save: Some(Box::new(move |c: &Checkpoint| {
                into.borrow_mut().push(c.clone())
            })),
            ..Kept::default()
        },
        ..Data::default()
    };
    let r = pollster::block_on(session::run(&Cpu, &run, data, &mut |_, _, _, _| {}))?;
    let seen = seen.take();
    Ok((r, seen))
}

/// Every number a result shows, as bits (NaN marks held-out rows and
/// equals itself here), under its name.
fn numbers(r: &Results) -> Vec<(String, Vec<u64>)> {
    let f32s = |v: &[f32]| v.iter().map(|x| x.to_bits() as u64).collect();
    let f64s = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect();
    let layers = r.layers.iter().map(|l| (l.name.clone(), f32s(&l.values)));
    let curves = r.curves.iter().map(|c| (c.name.clone(), f64s(&c.values)));
    let tables = r.matrices.iter().map(|m| (m.name.clone(), f64s(&m.values)));
    layers.chain(curves).chain(tables).collect()
}

fn says(r: &Results, text: &str) -> bool {
    r.files
        .iter()
        .any(|(_, b)| String::from_utf8_lossy(b).contains(text))
}

#[test]
fn a_stopped_run_goes_on_from_its_kept_checkpoint_and_ends_as_the_whole_run() {
    for params in [
        r#"{"analysis":"nsf","model":"nsfh","factors":4,"inducing":40,"epochs":35,"seed":3}"#,
        r#"{"analysis":"resolvi","epochs":25,"latent":4,"seed":2}"#,
        r#"{"analysis":"cell2location","labels":"cell_type","reference_epochs":12,"epochs":1100,"seed":1}"#,
    ] {
        let (whole, kept) = run(params, None).unwrap();
        let at: Vec<String> = kept.iter().map(Checkpoint::at).collect();
        // The second checkpoint: epoch 20, or cell2location's mapping at
        // step 500 (after the regression's at epoch 10).
        let want = ["epoch 10", "epoch 20"];
        let want = if params.contains("cell2location") {
            &["epoch 10", "step 500", "step 1000"][..]
        } else {
            &want[..]
        };
        assert!(
            at.iter().zip(want).all(|(a, w)| a == w) && at.len() >= want.len(),
            "{params}: {at:?}"
        );
        // What the page keeps and sends back is the checkpoint's bytes.
        let second = Checkpoint::from_bytes(&kept[1].to_bytes()).unwrap();
        let (resumed, again) = run(params, Some(second)).unwrap();
        // (cell2location runs its regression again, then its mapping from
        // step 500.)
        let after: Vec<&str> = if params.contains("cell2location") {
            vec!["epoch 10", "step 1000"]
        } else {
            at[2..].iter().map(String::as_str).collect()
        };
        assert_eq!(
            again.iter().map(Checkpoint::at).collect::<Vec<_>>(),
            after,
            "{params}: the resumed run keeps checkpointing"
        );
        let want = numbers(&whole);
        assert!(want.iter().map(|n| n.1.len()).sum::<usize>() > 1000);
        assert!(numbers(&resumed) == want, "{params}: the results differ");
        let note = format!(
            "resumed from the checkpoint a stopped run left at {}",
            at[1]
        );
        let note = note.as_str();
        assert!(says(&resumed, note) && !says(&whole, note), "{params}");
        // A checkpoint of another fit is refused by name, not half applied.
        let mut wrong = kept[1].clone();
        wrong.buffers.pop();
        let e = run(params, Some(wrong)).map(|_| ()).unwrap_err();
        assert!(e.contains("another fit"), "{params}: {e}");
    }
}

/// A fit on a device whose failures panic (cudarc's errors on CUDA, out of
/// memory among them) goes on on the CPU: `attempt` catches the failure
/// after epoch 25 and hands back the checkpoint at epoch 20, from which the
/// fit ends as the uninterrupted one and says why it moved.
#[test]
fn a_fit_whose_device_fails_goes_on_on_the_cpu_from_its_last_checkpoint() {
    let (ds, _) = tessera_core::demo::demo_pair(Default::default());
    let o = Options {
        model: Model::Nsfh,
        factors: 4,
        inducing: 40,
        epochs: 35,
        ..Options::default()
    };
    let oom = "CUDA alloc failed: DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")";
    let fit = |kept: &mut Kept, fail_after: usize| {
        let mut status = |e: usize, _: usize, _: f64| {
            assert!(e <= fail_after, "{oom}");
            true
        };
        pollster::block_on(run_kept(&Cpu, "demo", &ds, &o, &mut status, kept)).unwrap()
    };
    let whole = fit(&mut Kept::default(), usize::MAX);
    let Err(mut resume) = attempt(|kept| fit(kept, 25)) else {
        panic!("the fit did not fail after epoch 25");
    };
    assert_eq!(resume.from.as_ref().map(|c| c.epoch), Some(20));
    assert!(resume.after.as_deref().is_some_and(|w| w.contains(oom)));
    let resumed = fit(&mut resume, usize::MAX);
    let note = "the fit resumed on the CPU from its checkpoint at epoch 20";
    assert!(
        resumed
            .notes
            .iter()
            .any(|n| n.contains(oom) && n.contains(note)),
        "{:?}",
        resumed.notes
    );
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&resumed.history.loss), bits(&whole.history.loss));
    assert_eq!(bits(&resumed.factors), bits(&whole.factors));
}
