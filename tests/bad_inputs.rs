//! The bad-input catalogue: each bad input a stranger can hand Tessera, and
//! the named error it must end in, through the command line (`tessera run`)
//! and through the tab's entry point (`tessera_core::session` and
//! `Link::decode`, what the web worker and the page call). README's table
//! is rendered from `cases()`: `TESSERA_BLESS=1 cargo test --test
//! bad_inputs` rewrites it, and the test fails while the two differ.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use tessera_core::analysis::{Data, Params};
use tessera_core::compute::cpu::Cpu;
use tessera_core::data::{dense, Annotation, Column, Dataset, Frame, Matrix};
use tessera_core::io::{h5ad_write, FileSet};
use tessera_core::share::{DeviceChoice, Inputs, Link, Run, Source, View, VERSION};
use tessera_core::{bundle, session};

/// One bad input.
enum Input {
    /// The spatial data (and a reference) as files of these names and bytes.
    Files {
        sp: (&'static str, Vec<u8>),
        sc: Option<(&'static str, Vec<u8>)>,
    },
    /// A share link (the payload after `#link=`).
    Link(String),
    /// Only a file's name and size: the tab refuses it before reading.
    Size(&'static str, u64),
}

struct Case {
    /// What is wrong, as README lists it.
    what: &'static str,
    make: fn() -> Input,
    /// The run's parameters (empty: the input is only opened).
    run: &'static str,
    /// What the error must say, on every surface.
    error: &'static str,
    /// Why the command line is not asked (empty: it must give the same error).
    not_cli: &'static str,
}

const NSF: &str = r#"{"analysis": "nsf", "epochs": 2, "inducing": 20, "factors": 3}"#;
const NHOOD: &str = r#"{"analysis": "nhood", "cluster_key": "cell_type"}"#;
const RESOLVI: &str = r#"{"analysis": "resolvi", "epochs": 1}"#;
const TANGRAM: &str = r#"{"analysis": "tangram", "cluster_label": "cell_type", "num_epochs": 2}"#;

fn cases() -> Vec<Case> {
    vec![
        Case {
            what: "negative counts",
            make: || h5ad(with_x(0, 0, -1.0)),
            run: NSF,
            error: "X: has 1 negative values (minimum -1)",
            not_cli: "",
        },
        Case {
            what: "non-integer counts",
            make: || h5ad(with_x(0, 0, 0.5)),
            run: NSF,
            error: "X: has 1 non-integer values: the models need raw counts",
            not_cli: "",
        },
        Case {
            what: "NaN counts",
            make: || h5ad(with_x(0, 0, f32::NAN)),
            run: NSF,
            error: "X: has 1 NaN values",
            not_cli: "",
        },
        Case {
            what: "an empty matrix (no cells)",
            make: || h5ad(cells(0)),
            run: NSF,
            error: "obs: has no cells",
            not_cli: "",
        },
        Case {
            what: "an empty matrix (no genes)",
            make: || {
                let mut d = cells(40);
                d.x = Some(Matrix::Dense(dense(40, 0, vec![]).unwrap()));
                d.var = Frame::with_index(vec![]);
                h5ad(d)
            },
            run: NSF,
            error: "X: has no genes (var is empty)",
            not_cli: "",
        },
        Case {
            what: "cells without counts",
            make: || {
                let mut d = cells(40);
                zero(&mut d, |i, _| i == 3);
                h5ad(d)
            },
            run: RESOLVI,
            error: "X: 1 of 40 cells have no counts (the first is cell_3): remove cells with fewer than 5 counts before ResolVI",
            not_cli: "",
        },
        Case {
            what: "genes without counts (no counts at all)",
            make: || {
                let mut d = cells(40);
                zero(&mut d, |_, _| true);
                h5ad(d)
            },
            run: NSF,
            error: "X: has no counts: every cell and every gene is zero",
            not_cli: "",
        },
        Case {
            what: "no shared genes",
            make: || Input::Files {
                sp: ("spatial.h5ad", write(cells(40))),
                sc: Some(("reference.h5ad", {
                    let mut d = cells(30);
                    d.var = Frame::with_index((0..GENES).map(|j| format!("Other{j}")).collect());
                    write(d)
                })),
            },
            run: TANGRAM,
            error: "var_names: the datasets share no expressed genes",
            not_cli: "",
        },
        Case {
            what: "duplicate cell names",
            make: || {
                let mut d = cells(40);
                d.obs.index[5] = d.obs.index[4].clone();
                h5ad(d)
            },
            run: NHOOD,
            error: "obs_names: 'cell_4' names more than one cell; cell names must be unique (anndata's adata.obs_names_make_unique())",
            not_cli: "",
        },
        Case {
            what: "duplicate gene names",
            make: || {
                let mut d = cells(40);
                d.var.index[1] = d.var.index[0].clone();
                h5ad(d)
            },
            run: NSF,
            error: "var_names: 'Gene0' names more than one gene; gene names must be unique (anndata's adata.var_names_make_unique())",
            not_cli: "",
        },
        Case {
            what: "no coordinates",
            make: || {
                let mut d = cells(40);
                d.obsm.clear();
                h5ad(d)
            },
            run: NHOOD,
            error: "obsm: no spatial coordinates (obsm 'spatial', 'X_spatial' or 'spatial_coords'; x/y columns for tables)",
            not_cli: "",
        },
        Case {
            what: "no label column",
            make: || {
                let mut d = cells(40);
                d.obs = Frame::with_index(d.obs.index.clone());
                h5ad(d)
            },
            run: NHOOD,
            error: "obs/cell_type: no such obs column",
            not_cli: "",
        },
        Case {
            what: "a label column with one category",
            make: || {
                let mut d = cells(40);
                d.obs.set(
                    "cell_type",
                    Column::Categorical {
                        codes: vec![0; 40],
                        categories: vec!["T".into()],
                        ordered: false,
                    },
                );
                h5ad(d)
            },
            run: NHOOD,
            error: "cell_type: has 1 cell type(s); at least 2 are needed",
            not_cli: "",
        },
        Case {
            what: "a truncated .h5ad",
            make: || {
                let b = write(cells(40));
                file("spatial.h5ad", b[..b.len() / 2].to_vec())
            },
            run: NHOOD,
            error: "HDF5 format error: unexpected EOF",
            not_cli: "",
        },
        Case {
            what: "a corrupt .h5ad",
            make: || {
                // The superblock: where the file's objects are.
                let mut b = write(cells(40));
                b[8..96].fill(0xA5);
                file("spatial.h5ad", b)
            },
            run: NHOOD,
            error: "unreadable HDF5: HDF5 format error: unsupported superblock version",
            not_cli: "",
        },
        Case {
            what: "an .h5ad whose chunk offsets overflow (a fuzzer's find)",
            make: || file("s6_corrupt.h5ad", fuzz_find("h5ad_chunk_offset_overflow")),
            run: NSF,
            error: "layers/counts: HDF5 format error",
            not_cli: "",
        },
        Case {
            what: "a truncated 10x .h5",
            make: || {
                let b = tenx_h5();
                file("filtered_feature_bc_matrix.h5", b[..b.len() * 2 / 3].to_vec())
            },
            run: NSF,
            error: "HDF5 format error: unexpected EOF",
            not_cli: "",
        },
        Case {
            what: "a truncated .zip",
            make: || {
                let b = zip_of(&[("cells.csv", csv(40).into_bytes())]);
                file("visium.zip", b[..b.len() - 30].to_vec())
            },
            run: NSF,
            error: "not a readable zip archive",
            not_cli: "",
        },
        Case {
            what: "a corrupt .csv (a row of the wrong length)",
            make: || {
                let mut t = csv(40);
                t.push_str("cell_x,1,2\n");
                file("cells.csv", t.into_bytes())
            },
            run: NSF,
            error: "line 42: has 3 fields but the first line has 19 (ragged rows)",
            not_cli: "",
        },
        Case {
            what: "a gzip bomb (.csv.gz inflating past 4 GiB)",
            make: || file("cells.csv.gz", gzip_bomb()),
            run: NSF,
            error: "inflates to more than 4 GiB",
            not_cli: "",
        },
        Case {
            what: "a results bundle with an entry missing",
            make: || file("tessera_results.zip", rezip(small_bundle(), "points.npy", None)),
            run: "",
            error: "tessera_results.zip: points.npy: missing from the bundle (was it made by Tessera?)",
            not_cli: "the page opens bundles; the command line writes them",
        },
        Case {
            what: "a results bundle whose image is cut short",
            make: || {
                let cut = Some(vec![0u8; 60]);
                file("tessera_results.zip", rezip(small_bundle(), "image.rgba", cut))
            },
            run: "",
            error: "tessera_results.zip: image.rgba: 60 bytes for a 4 x 4 image at scale 1",
            not_cli: "the page opens bundles; the command line writes them",
        },
        Case {
            what: "a 4 GB file dropped in a tab",
            make: || Input::Size("big.h5ad", 4_000_000_000),
            run: "",
            error: "big.h5ad: 3.7 GiB is more than a browser tab can hold",
            not_cli: "a limit of tabs: the command line reads files of any size",
        },
        Case {
            what: "a link whose source is not https://",
            make: || {
                link(|l| {
                    l.run.inputs.sp = Source::Url {
                        url: "http://example.org/sp.h5ad".into(),
                    }
                })
            },
            run: "",
            error: "the spatial data must be an https:// address of at most 2048 characters (got 'http://example.org/sp.h5ad')",
            not_cli: "",
        },
        Case {
            what: "a link longer than 16,384 characters",
            make: || Input::Link("A".repeat(16_385)),
            run: "",
            error: "the link is longer than 16384 characters",
            not_cli: "",
        },
        Case {
            what: "a link of a future version",
            make: || link(|l| l.v = VERSION + 1),
            run: "",
            error: "link version 2 (this page reads version 1)",
            not_cli: "",
        },
    ]
}

const GENES: usize = 16;

/// `n` cells on a grid with whole-number counts, three cell types and
/// coordinates in obsm['spatial'].
fn cells(n: usize) -> Dataset {
    let x: Vec<f32> = (0..n * GENES)
        .map(|k| (1 + (k * 7 + k / GENES * 3) % 5) as f32)
        .collect();
    let xy: Vec<f64> = (0..n)
        .flat_map(|i| [(i % 8) as f64 * 10.0, (i / 8) as f64 * 10.0])
        .collect();
    let mut obs = Frame::with_index((0..n).map(|i| format!("cell_{i}")).collect());
    obs.set(
        "cell_type",
        Column::Categorical {
            codes: (0..n).map(|i| (i % 3) as i32).collect(),
            categories: vec!["B".into(), "T".into(), "NK".into()],
            ordered: false,
        },
    );
    let mut d = Dataset {
        x: Some(Matrix::Dense(dense(n, GENES, x).unwrap())),
        x_dtype: "float32".into(),
        obs,
        var: Frame::with_index((0..GENES).map(|j| format!("Gene{j}")).collect()),
        ..Dataset::default()
    };
    d.obsm.insert(
        "spatial".into(),
        Annotation::Array(dense(n, 2, xy).unwrap()),
    );
    d
}

fn with_x(i: usize, j: usize, v: f32) -> Dataset {
    let mut d = cells(40);
    if let Some(Matrix::Dense(x)) = &mut d.x {
        x[[i, j]] = v;
    }
    d
}

fn zero(d: &mut Dataset, at: impl Fn(usize, usize) -> bool) {
    if let Some(Matrix::Dense(x)) = &mut d.x {
        for ((i, j), v) in x.indexed_iter_mut() {
            if at(i, j) {
                *v = 0.0;
            }
        }
    }
}

fn write(d: Dataset) -> Vec<u8> {
    h5ad_write::write(&d).expect("the test's dataset writes")
}

fn h5ad(d: Dataset) -> Input {
    file("spatial.h5ad", write(d))
}

fn file(name: &'static str, bytes: Vec<u8>) -> Input {
    Input::Files {
        sp: (name, bytes),
        sc: None,
    }
}

/// A cell table: id, x, y, then the genes.
fn csv(n: usize) -> String {
    let mut t = String::from("cell_id,x,y");
    (0..GENES).for_each(|j| t.push_str(&format!(",Gene{j}")));
    t.push('\n');
    for i in 0..n {
        t.push_str(&format!("cell_{i},{},{}", i % 8, i / 8));
        (0..GENES).for_each(|j| t.push_str(&format!(",{}", (i + j) % 4)));
        t.push('\n');
    }
    t
}

/// A one-point bundle with a 4 x 4 tissue image.
fn small_bundle() -> Vec<u8> {
    bundle::write(&bundle::Results {
        analysis: "nhood".into(),
        names: vec!["a".into()],
        xy: vec![0.0, 1.0],
        image: Some(bundle::Image {
            width: 4,
            height: 4,
            rgba: vec![0; 64],
            scale: 1.0,
        }),
        ..Default::default()
    })
    .unwrap()
}

/// The zip with `entry` replaced by `with` (left out when None).
fn rezip(bytes: Vec<u8>, entry: &str, with: Option<Vec<u8>>) -> Vec<u8> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(&bytes[..])).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..z.len() {
        let f = z.by_index_raw(i).unwrap();
        if f.name() != entry {
            out.raw_copy_file(f).unwrap();
        } else if let Some(b) = &with {
            out.start_file(entry, zip::write::SimpleFileOptions::default())
                .unwrap();
            out.write_all(b).unwrap();
        }
    }
    out.finish().unwrap().into_inner()
}

fn zip_of(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in files {
        z.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap().into_inner()
}

/// About 4 MB of gzip members that inflate to 4.06 GiB of zeros.
fn gzip_bomb() -> Vec<u8> {
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&vec![0u8; 64 << 20]).unwrap();
    z.finish().unwrap().repeat(65)
}

/// A fuzz target's crash input, rebuilt from the real file it mutated and
/// the patch kept in tests/fuzz_regressions/ (no data file is copied).
fn fuzz_find(name: &str) -> Vec<u8> {
    let patch = std::fs::read_to_string(
        common::repo_root().join(format!("tests/fuzz_regressions/{name}.patch")),
    )
    .unwrap();
    let dir = common::data_dir("bad_inputs").expect("the fuzzed file's original");
    let mut out = vec![];
    for line in patch.lines().filter(|l| !l.starts_with('#')) {
        let (a, b) = line.split_once(' ').unwrap();
        if a == "base" {
            let (file, len) = b.split_once(' ').unwrap();
            out = std::fs::read(dir.join(file)).unwrap();
            out.resize(len.parse().unwrap(), 0);
        } else {
            let at: usize = a.parse().unwrap();
            let bytes: Vec<u8> = (0..b.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&b[i..i + 2], 16).unwrap())
                .collect();
            out[at..at + bytes.len()].copy_from_slice(&bytes);
        }
    }
    out
}

fn tenx_h5() -> Vec<u8> {
    let dir = common::data_dir("bad_inputs").expect("the 10x .h5 of scanpy_visium_test");
    std::fs::read(dir.join("scanpy_visium_test/filtered_feature_bc_matrix.h5")).unwrap()
}

/// A link to the demo with one thing changed, encoded as the page does
/// (`encode` would refuse nothing: the checks are on decode).
fn link(change: fn(&mut Link)) -> Input {
    let mut l = Link {
        v: VERSION,
        run: Run {
            params: params(NHOOD),
            inputs: Inputs {
                sc: None,
                sp: Source::Demo,
                prot: None,
            },
            device: DeviceChoice::Cpu,
        },
        view: View::default(),
    };
    change(&mut l);
    Input::Link(l.encode())
}

fn params(json: &str) -> Params {
    serde_json::from_str(json).expect("the catalogue's parameters parse")
}

/// Bomb rows each hold 4 GiB while they run: one at a time.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy(c: &Case) -> Option<std::sync::MutexGuard<'static, ()>> {
    c.what
        .contains("bomb")
        .then(|| HEAVY.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The error a tab shows for a case (the worker's and the page's calls).
fn in_tab(c: &Case, input: Input) -> Result<String, String> {
    match input {
        Input::Size(name, size) => session::admit(name, size).map(|_| "admitted".into()),
        Input::Link(payload) => Link::decode(&payload).map(|_| "decoded".into()),
        Input::Files { sp, sc } => {
            if c.run.is_empty() {
                return session::open(FileSet::single(sp.0, sp.1)).map(|_| "opened".into());
            }
            let sp = session::dataset(FileSet::single(sp.0, sp.1))?;
            let sc = sc
                .map(|(n, b)| session::dataset(FileSet::single(n, b)))
                .transpose()?;
            let local = |n: &str| Source::Local {
                files: vec![n.into()],
            };
            let run = Run {
                params: params(c.run),
                inputs: Inputs {
                    sp: local(&sp.0),
                    sc: sc.as_ref().map(|s| local(&s.0)),
                    prot: None,
                },
                device: DeviceChoice::Cpu,
            };
            let data = Data {
                sp,
                sc,
                ..Data::default()
            };
            pollster::block_on(session::run(&Cpu, &run, data, &mut |_, _, _, _| {}))
                .map(|_| "ran".into())
        }
    }
}

/// The error `tessera run` prints for a case.
fn on_cli(c: &Case, input: Input, dir: &Path) -> Result<String, String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.args(["run", "--device", "cpu", "--out"])
        .arg(dir.join("out"));
    let put = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    match input {
        Input::Size(..) => unreachable!("tab-only rows are not run on the command line"),
        Input::Link(payload) => {
            let sp = put("spatial.h5ad", &write(cells(40)));
            cmd.arg(format!("https://tessera.example/#link={payload}"))
                .arg("--sp")
                .arg(sp);
        }
        Input::Files { sp, sc } => {
            cmd.arg(c.run).arg("--sp").arg(put(sp.0, &sp.1));
            if let Some((n, b)) = sc {
                cmd.arg("--sc").arg(put(n, &b));
            }
        }
    }
    let out = cmd.output().expect("tessera runs");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !err.contains("panicked"),
        "{}: the command line panicked:\n{err}",
        c.what
    );
    if out.status.success() {
        Ok(err)
    } else {
        Err(err)
    }
}

/// The file a case's error must name.
fn file_of(input: &Input) -> Option<&'static str> {
    match input {
        Input::Files { sp, .. } => Some(sp.0),
        _ => None,
    }
}

fn check(c: &Case, surface: &str, file: Option<&str>, got: Result<String, String>) {
    match got {
        Ok(what) => panic!(
            "{} ({surface}): {what}, expected the error '{}'",
            c.what, c.error
        ),
        Err(e) => {
            eprintln!("{} ({surface}): {e}", c.what);
            assert!(
                e.contains(c.error),
                "{} ({surface}): the error\n  {e}\ndoes not say\n  {}",
                c.what,
                c.error
            );
            if let Some(f) = file {
                assert!(
                    e.contains(f),
                    "{} ({surface}): '{e}' does not name {f}",
                    c.what
                );
            }
        }
    }
}

#[test]
fn every_bad_input_gets_its_named_error_in_a_tab() {
    for c in cases() {
        let _guard = heavy(&c);
        let input = (c.make)();
        let file = file_of(&input);
        check(&c, "tab", file, in_tab(&c, input));
    }
}

#[test]
fn every_bad_input_gets_its_named_error_on_the_command_line() {
    for (i, c) in cases()
        .iter()
        .enumerate()
        .filter(|(_, c)| c.not_cli.is_empty())
    {
        let dir = std::env::temp_dir().join(format!("tessera-bad-{}-{i}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _guard = heavy(c);
        let input = (c.make)();
        let file = file_of(&input);
        let got = on_cli(c, input, &dir);
        let _ = std::fs::remove_dir_all(&dir);
        check(c, "command line", file, got);
    }
}

/// README's catalogue, rendered from the cases.
fn table() -> String {
    let mut t =
        String::from("| Bad input | Run | The error says | Command line |\n|---|---|---|---|\n");
    for c in cases() {
        let run = if matches!((c.make)(), Input::Link(_)) {
            "the link".to_string()
        } else if c.run.is_empty() {
            "opening it".to_string()
        } else {
            let p = params(c.run);
            format!("`{}`", p.name())
        };
        t.push_str(&format!(
            "| {} | {run} | {} | {} |\n",
            c.what,
            c.error.replace('|', "\\|"),
            if c.not_cli.is_empty() {
                "the same error"
            } else {
                c.not_cli
            }
        ));
    }
    t
}

#[test]
fn readme_lists_the_catalogue() {
    const BEGIN: &str = "<!-- bad-inputs: generated by tests/bad_inputs.rs -->\n";
    const END: &str = "<!-- bad-inputs: end -->";
    let path = common::repo_root().join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (Some(a), Some(b)) = (readme.find(BEGIN), readme.find(END)) else {
        panic!("README.md has no bad-inputs markers");
    };
    let want = format!("{}{BEGIN}{}{}", &readme[..a], table(), &readme[b..]);
    if std::env::var("TESSERA_BLESS").as_deref() == Ok("1") {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    assert!(
        readme == want,
        "README's bad-input table differs from tests/bad_inputs.rs: run TESSERA_BLESS=1 cargo test --test bad_inputs"
    );
}
