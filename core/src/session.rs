//! What a tab does with what a stranger hands it, without the browser: a
//! file's size before it is read, the files once read (a dataset or a
//! results bundle), and a run of the registry on inputs already read. The
//! web worker calls these with the bytes and the device it has; the tests
//! call them the same way, so every bad input is checked where a tab meets it.

use crate::analysis::checks::{fmt_bytes, TAB_BUDGET};
use crate::analysis::Data;
use crate::bundle::{self, Results};
use crate::compute::Device;
use crate::io::{self, FileSet, Loaded, TableOptions};
use crate::share::Run;

/// The largest file a tab reads: a browser tab holds 4 GB in all, and the
/// file's bytes are held while they are parsed.
pub const MAX_FILE: u64 = TAB_BUDGET;

/// A file of `size` bytes may be read into the tab, or a named error.
pub fn admit(name: &str, size: u64) -> Result<(), String> {
    if size > MAX_FILE {
        return Err(format!(
            "{name}: {} is more than a browser tab can hold ({} per file); convert or subset it with the command line (tessera convert, or tessera run on this machine)",
            fmt_bytes(size),
            fmt_bytes(MAX_FILE)
        ));
    }
    Ok(())
}

/// What one dropped input turned out to be.
pub enum Opened {
    Dataset(Box<Loaded>),
    Bundle(Box<Results>),
}

/// One input: a results bundle (a single `.zip` with Tessera's manifest),
/// or a dataset in any format the readers know.
pub fn open(input: FileSet) -> Result<Opened, String> {
    if let [only] = &input.files[..] {
        if only.plain_name().ends_with(".zip") && bundle::is_bundle(&only.bytes) {
            return bundle::read(&only.plain_name(), &only.bytes)
                .map(|r| Opened::Bundle(Box::new(r)))
                .map_err(|e| e.to_string());
        }
    }
    io::read(input, &TableOptions::default())
        .map(|l| Opened::Dataset(Box::new(l)))
        .map_err(|e| e.to_string())
}

/// A dataset read from one input, for a run (a bundle is not one).
pub fn dataset(input: FileSet) -> Result<(String, crate::data::Dataset), String> {
    let name = input.label();
    match open(input)? {
        Opened::Dataset(l) => Ok((name, l.dataset)),
        Opened::Bundle(_) => Err(format!(
            "{name}: is a results bundle, not a dataset; open it to see its results"
        )),
    }
}

/// A checked run on `dev`: the link's checks, the analysis, and the
/// spatial data's tissue image under the results.
pub async fn run<D: Device>(
    dev: &D,
    run: &Run,
    data: Data,
    progress: &mut crate::analysis::Progress<'_>,
) -> Result<Results, String> {
    run.validate()?;
    for (name, d) in [Some(&data.sp), data.sc.as_ref(), data.prot.as_ref()]
        .into_iter()
        .flatten()
    {
        well_formed(name, d)?;
    }
    let image = bundle::tissue_image(&data.sp.1);
    let params = serde_json::to_value(run).map_err(|e| e.to_string())?;
    let mut r = run.params.run(dev, data, params, progress).await?;
    // Fits that resume (Info::resumes) moved to the CPU from their last
    // checkpoint when the GPU was lost; any other run's numbers are not kept.
    if let Some(why) = dev.lost() {
        if !run.params.info().resumes {
            return Err(format!(
                "{why}: {} cannot go on on the CPU mid-run; run it again with Device: CPU",
                run.params.info().title
            ));
        }
    }
    if r.image.is_none() {
        r.image = image;
    }
    Ok(r)
}

/// No analysis runs on no cells, on an expression matrix of no genes, or on
/// names that do not tell cells (or genes) apart: results are joined back
/// by name, and genes are matched by name.
fn well_formed(name: &str, d: &crate::data::Dataset) -> Result<(), String> {
    if d.n_obs() == 0 {
        return Err(format!("{name}: obs: has no cells"));
    }
    if d.x.as_ref().is_some_and(|x| x.shape().1 == 0) {
        return Err(format!("{name}: X: has no genes (var is empty)"));
    }
    for (key, names, what, fix) in [
        ("obs_names", &d.obs.index, "cell", "obs_names_make_unique"),
        ("var_names", &d.var.index, "gene", "var_names_make_unique"),
    ] {
        let mut seen = std::collections::HashSet::with_capacity(names.len());
        if let Some(dup) = names.iter().find(|n| !seen.insert(n.as_str())) {
            return Err(format!(
                "{name}: {key}: '{dup}' names more than one {what}; {what} names must be unique (anndata's adata.{fix}())"
            ));
        }
    }
    Ok(())
}
