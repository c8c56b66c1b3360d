//! A run stopped in a tab goes on from the checkpoint the page kept. Through
//! the tab's entry point (`session::run`), a run of NSF, RESOLVI or
//! cell2location that starts from a checkpoint a run left (epoch 20;
//! cell2location's finished regression, or its mapping at step 500), as the
//! bytes the page stores, ends with that run's results, bit for bit, and
//! says where it started.

use std::cell::RefCell;
use std::rc::Rc;

use tessera_core::analysis::Data;
use tessera_core::bundle::Results;
use tessera_core::compute::cpu::Cpu;
use tessera_core::models::checkpoint::{attempt, pack, unpack, Checkpoint, Kept};
use tessera_core::models::nsf::run::{run_kept, Model, Options};
use tessera_core::session;
use tessera_core::share::{DeviceChoice, Inputs, Params, Run, Source};

/// What the page stores at a checkpoint: where the fit stood, and the bytes.
type Stored = (String, Vec<u8>);

/// The run of `params` on the demo tissue, and its inputs (`kept` unset).
fn inputs(params: &str) -> (Run, Data) {
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
    let data = Data {
        sp: ("demo_spatial".into(), spatial),
        sc,
        ..Data::default()
    };
    (run, data)
}

/// The run of `params` from what a stopped run stored, and what this one
/// stores.
fn run(params: &str, from: Option<&[u8]>) -> Result<(Results, Vec<Stored>), String> {
    let (run, mut data) = inputs(params);
    let (from, finished) = from.map_or((None, vec![]), |b| unpack(b).unwrap());
    let seen = Rc::new(RefCell::new(vec![]));
    let into = seen.clone();
    data.kept = Kept::new(
        from,
        finished,
        Some(Box::new(move |c: &Checkpoint, f: &[Checkpoint]| {
            into.borrow_mut().push((c.at(), pack(c, f)))
        })),
    );
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
        r#"{"analysis":"resolvi","epochs":35,"latent":4,"seed":2}"#,
        r#"{"analysis":"cell2location","labels":"cell_type","reference_epochs":12,"epochs":1100,"seed":1}"#,
    ] {
        let (whole, kept) = run(params, None).unwrap();
        let at: Vec<&str> = kept.iter().map(|k| k.0.as_str()).collect();
        let c2l = params.contains("cell2location");
        // cell2location's regression leaves its result when it finishes;
        // its mapping goes on after it.
        let want: &[&str] = if c2l {
            &["epoch 10", "epoch 12 (finished)", "step 500", "step 1000"]
        } else {
            &["epoch 10", "epoch 20", "epoch 30"]
        };
        assert_eq!(at, want, "{params}");
        let want = numbers(&whole);
        assert!(want.iter().map(|n| n.1.len()).sum::<usize>() > 1000);
        // From epoch 20, or from cell2location's mapping at step 500 and
        // from its finished regression alone.
        let from: &[usize] = if c2l { &[2, 1] } else { &[1] };
        for &i in from {
            let (resumed, again) = run(params, Some(&kept[i].1)).unwrap();
            assert_eq!(
                again.iter().map(|k| k.0.as_str()).collect::<Vec<_>>(),
                at[i + 1..],
                "{params}: the resumed run keeps checkpointing, and does not fit again what it finished"
            );
            assert!(
                numbers(&resumed) == want,
                "{params} from {}: the results differ",
                at[i]
            );
            let note = format!(
                "resumed from the checkpoint a stopped run left at {}",
                at[i]
            );
            let note = note.as_str();
            let skipped = "the reference regression is the one a stopped run of the same inputs had finished (12 epochs)";
            assert_eq!(
                (says(&resumed, note), says(&resumed, skipped)),
                (i != 1 || !c2l, c2l),
                "{params} from {}",
                at[i]
            );
            assert!(!says(&whole, note) && !says(&whole, skipped), "{params}");
        }
        // A checkpoint of another fit, or a finished fit's result of other
        // sizes, is refused by name, not half applied.
        let (running, finished) = unpack(&kept[from[0]].1).unwrap();
        let mut wrong = running.unwrap();
        wrong.buffers.pop();
        let e = run(params, Some(&pack(&wrong, &finished)))
            .map(|_| ())
            .unwrap_err();
        assert!(e.contains("another fit"), "{params}: {e}");
        if let Some(mut done) = finished.into_iter().next() {
            done.values.pop();
            let e = run(params, Some(&pack(&done, &[])))
                .map(|_| ())
                .unwrap_err();
            assert!(e.contains("is not a finished fit"), "{params}: {e}");
        }
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

/// `tessera run` on CUDA hands the whole run, its `Kept` moved into the
/// inputs, to `attempt`. A failure in cell2location's mapping at step 650
/// goes on on the CPU with the finished regression's result and the
/// mapping's checkpoint at step 500, and ends as the uninterrupted run.
#[test]
fn a_run_whose_device_fails_in_its_second_fit_keeps_the_first() {
    let params = r#"{"analysis":"cell2location","labels":"cell_type","reference_epochs":12,"epochs":1100,"seed":1}"#;
    let whole = run(params, None).unwrap().0;
    let oom = "CUDA alloc failed: DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")";
    let go = |kept: &mut Kept, fail_at: usize| {
        let (run, mut data) = inputs(params);
        data.kept = std::mem::take(kept);
        let mut progress = |stage: &str, done: usize, _: usize, _: Option<f64>| {
            assert!(stage != "steps" || done < fail_at, "{oom}");
        };
        pollster::block_on(session::run(&Cpu, &run, data, &mut progress)).unwrap()
    };
    let Err(mut resume) = attempt(|kept| go(kept, 650)) else {
        panic!("the mapping did not fail at step 650");
    };
    assert_eq!(
        resume.from.as_ref().map(Checkpoint::at).as_deref(),
        Some("step 500")
    );
    let resumed = go(&mut resume, usize::MAX);
    assert!(numbers(&resumed) == numbers(&whole), "the results differ");
    for note in [
        "the reference regression had finished before",
        "the fit resumed on the CPU from its checkpoint at step 500",
    ] {
        assert!(says(&resumed, note) && says(&resumed, oom), "{note}");
    }
}
