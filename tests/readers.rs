//! Every reader against the real files in `$TESSERA_DATA`: the shapes and keys
//! the data README and DATASETS_summary.json list, and cross-checks of each raw
//! format against the lossless `derived/*.h5ad` that Python made from it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use tessera_core::data::{Column, Dataset, Matrix, Summary};
use tessera_core::io::{self, FileSet, TableOptions};

fn read_paths(dir: &Path, rels: &[&str], opts: &TableOptions) -> io::Loaded {
    let mut set = FileSet::default();
    for r in rels {
        set.files
            .extend(FileSet::from_path(&dir.join(r)).unwrap().files);
    }
    if let [one] = rels {
        set.name = Some(one.to_string());
    }
    io::read(set, opts).unwrap_or_else(|e| panic!("{rels:?}: {e}"))
}

fn read(dir: &Path, rels: &[&str]) -> io::Loaded {
    read_paths(dir, rels, &TableOptions::default())
}

fn dense(m: &Matrix) -> Vec<f32> {
    let (r, c) = m.shape();
    (0..r)
        .flat_map(|i| (0..c).map(move |j| (i, j)))
        .map(|(i, j)| m.get(i, j))
        .collect()
}

/// Same X (values, any storage), var names and spatial coordinates.
fn assert_same_data(ours: &Dataset, theirs: &Dataset, what: &str) {
    assert_eq!(
        (ours.n_obs(), ours.n_vars()),
        (theirs.n_obs(), theirs.n_vars()),
        "{what}: shape"
    );
    assert_eq!(ours.var.index, theirs.var.index, "{what}: var names");
    let (a, b) = (ours.x.as_ref().unwrap(), theirs.x.as_ref().unwrap());
    if a.shape().0 * a.shape().1 < 5_000_000 {
        assert_eq!(dense(a), dense(b), "{what}: X");
    } else {
        assert_eq!(a.nnz(), b.nnz(), "{what}: nnz");
        assert_eq!(a.row_sums(), b.row_sums(), "{what}: row sums");
    }
    match (ours.spatial(), theirs.spatial()) {
        (Some(s), Some(t)) => {
            assert_eq!(s.dim(), t.dim());
            for (x, y) in s.iter().zip(t.iter()) {
                assert!(
                    (x - y).abs() <= 1e-6 * y.abs().max(1.0),
                    "{what}: spatial {x} vs {y}"
                );
            }
        }
        (None, None) => {}
        _ => panic!("{what}: spatial present on one side only"),
    }
}

#[test]
fn every_h5ad_matches_the_data_summary() {
    let Some(dir) = common::data_dir("every_h5ad_matches_the_data_summary") else {
        return;
    };
    let text = std::fs::read_to_string(dir.join("DATASETS_summary.json")).unwrap();
    let summary: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert!(summary.len() >= 19, "summary lists {} files", summary.len());
    for (rel, want) in &summary {
        let rel = rel.strip_prefix("data/").unwrap();
        let loaded = read(&dir, &[rel]);
        let s = loaded.summary();
        if rel.ends_with(".h5ad") {
            // From disk as decoded, and the backed-mode summary (X scanned in
            // blocks): the same as from the bytes.
            let path = dir.join(rel);
            let disk = io::h5ad::read_file(&path).unwrap();
            assert_eq!(disk.x, loaded.dataset.x, "{rel}: X from disk");
            // The rest as text: NaN annotations are equal there, not by ==.
            assert_eq!(
                format!("{disk:?}"),
                format!("{:?}", loaded.dataset),
                "{rel}: read from disk"
            );
            let backed = io::h5ad::summary_of_file(&path).unwrap();
            assert_eq!(
                Summary {
                    source: s.source.clone(),
                    ..backed
                },
                s,
                "{rel}: summary without loading X"
            );
        }
        let shape: Vec<usize> = serde_json::from_value(want["shape"].clone()).unwrap();
        assert_eq!(vec![s.n_obs, s.n_vars], shape, "{rel}: shape");
        let cats: BTreeMap<String, usize> =
            serde_json::from_value(want["obs_categorical"].clone()).unwrap();
        let ours: BTreeMap<String, usize> = s
            .obs
            .iter()
            .filter_map(|c| c.n_categories.map(|n| (c.name.clone(), n)))
            .collect();
        assert_eq!(ours, cats, "{rel}: categorical obs columns");
        let obsm: BTreeSet<String> = serde_json::from_value(want["obsm"].clone()).unwrap();
        assert_eq!(
            s.obsm.iter().cloned().collect::<BTreeSet<_>>(),
            obsm,
            "{rel}: obsm"
        );
        let layers: Vec<String> = serde_json::from_value(want["layers"].clone()).unwrap();
        assert_eq!(s.layers, layers, "{rel}: layers");
        let head: Vec<String> = serde_json::from_value(want["var_head"].clone()).unwrap();
        assert_eq!(s.var_names, head, "{rel}: first var names");
        if let Some(integer) = want.get("integer").and_then(|v| v.as_bool()) {
            let x = s.x.as_ref().unwrap();
            assert_eq!(x.values.non_integer == 0, integer, "{rel}: integer values");
            let (min, max) = (want["min"].as_f64().unwrap(), want["max"].as_f64().unwrap());
            assert!(
                (x.values.min - min).abs() < 1e-5
                    && (x.values.max - max).abs() < 1e-5 * max.abs().max(1.0),
                "{rel}: range"
            );
        }
    }
}

#[test]
fn legacy_and_old_anndata_encodings() {
    let Some(dir) = common::data_dir("legacy_and_old_anndata_encodings") else {
        return;
    };
    // Pre-0.7: compound obs/var/obsm, raw.X, uns/<col>_categories.
    let pbmc = read(&dir, &["scanpy_pbmc68k_reduced/10x_pbmc68k_reduced.h5ad"]).dataset;
    assert_eq!((pbmc.n_obs(), pbmc.n_vars()), (700, 765));
    let Some(Column::Categorical {
        categories, codes, ..
    }) = pbmc.obs.column("bulk_labels")
    else {
        panic!()
    };
    assert_eq!(categories.len(), 10);
    assert!(codes.iter().all(|&c| (0..10).contains(&c)));
    assert_eq!(pbmc.obsm["X_pca"].n_cols(), 50);
    assert_eq!(pbmc.raw_x.as_ref().unwrap().shape(), (700, 765));
    assert!(matches!(
        pbmc.var.column("highly_variable"),
        Some(Column::Bool(_))
    ));
    // 0.7-era: integer obs index, index named by `_index` attribute.
    let osm = read(&dir, &["tangram_osmfish_ssp/smFISH_anndata.h5ad"]).dataset;
    assert_eq!(osm.obs.index[..3], ["0", "1", "2"]);
    let mop = read(&dir, &["tangram_merfish_mop/test_ad_sp_readytomap.h5ad"]).dataset;
    assert_eq!(mop.obs.index_name.as_deref(), Some("sample_name"));
    assert!(mop.obs.column("sample_name").is_none() && mop.obs.column("x_um").is_some());
    // Space Ranger scalefactors survive in uns.
    let v = read(
        &dir,
        &["visium_cytassist_mouse/derived/visium_cytassist_mouse.h5ad"],
    )
    .dataset;
    let sf = v.uns["scalefactors"]
        .get("tissue_hires_scalef")
        .and_then(|x| x.as_f64())
        .unwrap();
    assert!(sf > 0.0 && sf < 1.0);
}

/// The first data row of a positions file, parsed independently.
fn first_position(path: &Path) -> (String, f64, f64) {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text.lines().find(|l| !l.starts_with("barcode")).unwrap();
    let f: Vec<&str> = line.split(',').collect();
    (
        f[0].to_string(),
        f[5].parse().unwrap(),
        f[4].parse().unwrap(),
    )
}

fn zip_folder(dir: &Path, prefix: &str) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut z = zip::ZipWriter::new(&mut buf);
    let set = FileSet::from_path(dir).unwrap();
    for f in &set.files {
        z.start_file(
            format!("{prefix}/{}", f.path),
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        z.write_all(&f.bytes).unwrap();
    }
    z.finish().unwrap();
    buf.into_inner()
}

#[test]
fn space_ranger_folder_and_zip() {
    let Some(dir) = common::data_dir("space_ranger_folder_and_zip") else {
        return;
    };
    let folder = read(&dir, &["scanpy_visium_test"]);
    let s = folder.summary();
    assert_eq!((s.n_obs, s.n_vars), (100, 100));
    assert!(s.x.as_ref().unwrap().raw_counts);
    let sp = s.spatial.as_ref().unwrap();
    assert_eq!(
        (sp.x_min, sp.x_max, sp.y_min, sp.y_max),
        (2787.0, 11380.0, 2885.0, 11026.0)
    );
    let sizes: BTreeSet<(String, usize, usize)> = s
        .images
        .iter()
        .map(|i| (i.name.clone(), i.width, i.height))
        .collect();
    assert_eq!(
        sizes,
        [("hires".into(), 2000, 2000), ("lowres".into(), 600, 600)].into()
    );
    assert!(s.images.iter().all(|i| i.library == "custom"));
    let lib = &folder.dataset.uns["spatial"].get("custom").unwrap();
    let spot = lib
        .get("scalefactors")
        .unwrap()
        .get("spot_diameter_fullres")
        .and_then(|v| v.as_f64())
        .unwrap();
    assert!(spot > 1.0);
    // The image the results plot draws under the spots, aligned by its
    // scale factor: this folder's hires PNG is plain black (a placeholder),
    // so the lowres one, pixel for pixel.
    let im = tessera_core::bundle::tissue_image(&folder.dataset).expect("an H&E image");
    assert_eq!((im.width, im.height, im.scale), (600, 600, 0.045004502));
    let Some(tessera_core::data::Value::Bytes { shape, data }) =
        lib.get("images").and_then(|i| i.get("lowres"))
    else {
        panic!("lowres image bytes");
    };
    let c = shape[2];
    let p = 345 * 600 + 287;
    assert_eq!(&im.rgba[p * 4..p * 4 + 3], &data[p * c..p * c + 3]);
    assert_eq!(im.rgba[p * 4 + 3], 255);
    let Some(tessera_core::data::Value::Bytes { data: hires, .. }) =
        lib.get("images").and_then(|i| i.get("hires"))
    else {
        panic!("hires image bytes");
    };
    assert!(
        hires.iter().all(|&b| b == hires[0] || b == 255),
        "the hires placeholder"
    );
    // Coordinates: obsm['spatial'] = (pxl_col, pxl_row) of each barcode.
    let ds = &folder.dataset;
    let xy = ds.spatial().unwrap();
    let (bc, col, row) =
        first_position(&dir.join("squidpy_test_visium/spatial/tissue_positions_list.csv"));
    let i = ds
        .obs
        .index
        .iter()
        .position(|b| *b == bc)
        .expect("barcode in matrix");
    assert_eq!(xy.row(i).to_vec(), [col, row]);

    // The same folder zipped (as a browser user would drop it).
    let zipped = zip_folder(&dir.join("scanpy_visium_test"), "scanpy_visium_test");
    let z = io::read(
        FileSet::single("visium.zip", zipped),
        &TableOptions::default(),
    )
    .unwrap();
    assert_eq!(z.dataset.x, folder.dataset.x);
    assert_eq!(z.dataset.obsm, folder.dataset.obsm);
    assert_eq!(z.summary().images, s.images);

    // Space Ranger 3 (tissue_positions.csv with header) against its derived h5ad.
    let cyt = read(&dir, &["visium_cytassist_mouse"]).dataset;
    let derived = read(
        &dir,
        &["visium_cytassist_mouse/derived/visium_cytassist_mouse.h5ad"],
    )
    .dataset;
    assert_same_data(&cyt, &derived, "cytassist");
    assert_eq!(cyt.obs.column("array_row"), derived.obs.column("array_row"));
    // Matrix Market folders.
    let mtx = read(&dir, &["visium_spe_sections/section1/outs"]).summary();
    assert_eq!((mtx.n_obs, mtx.n_vars), (50, 50));
    assert_eq!(mtx.images.len(), 1);
}

#[test]
fn xenium_matrix_with_cell_table() {
    let Some(dir) = common::data_dir("xenium_matrix_with_cell_table") else {
        return;
    };
    let ours = read(
        &dir,
        &[
            "xenium_mouse_brain_small/cell_feature_matrix.h5",
            "xenium_mouse_brain_small/cells.csv.gz",
        ],
    )
    .dataset;
    let derived = read(&dir, &["xenium_mouse_brain_small/derived/xenium.h5ad"]).dataset;
    assert_same_data(&ours, &derived, "xenium");
    assert_eq!(ours.obs.index, derived.obs.index);
    assert!(ours.obs.column("cell_area").is_some());
}

#[test]
fn csv_pairs_match_their_derived_h5ad() {
    let Some(dir) = common::data_dir("csv_pairs_match_their_derived_h5ad") else {
        return;
    };
    for (name, counts, coords) in [
        (
            "rctd_visium_hippocampus",
            "spatial/counts.csv",
            "spatial/coords.csv",
        ),
        (
            "rctd_merfish_hypothalamus",
            "spatial/counts.csv",
            "spatial/coords.csv",
        ),
        (
            "rctd_slideseq_cerebellum",
            "spatial/MappedDGEForR.csv",
            "spatial/BeadLocationsForR.csv",
        ),
    ] {
        let ours = read(
            &dir,
            &[&format!("{name}/{counts}"), &format!("{name}/{coords}")],
        )
        .dataset;
        let derived = read(&dir, &[&format!("{name}/derived/spatial.h5ad")]).dataset;
        assert_same_data(&ours, &derived, name);
        assert_eq!(ours.obs.index, derived.obs.index, "{name}: barcodes");
    }
    // Reference: counts (genes x cells) + labels.
    let r = read(
        &dir,
        &[
            "rctd_visium_hippocampus/reference/counts.csv",
            "rctd_visium_hippocampus/reference/cell_types.csv",
        ],
    );
    let derived = read(&dir, &["rctd_visium_hippocampus/derived/reference.h5ad"]).dataset;
    assert_same_data(&r.dataset, &derived, "rctd reference");
    let Some(Column::Categorical { categories, .. }) = r.dataset.obs.column("x") else {
        panic!("labels column")
    };
    assert_eq!(categories.len(), 17);
    // Headerless text exports: genes x cells plus coordinates and labels.
    let sf = read(
        &dir,
        &[
            "seqfish_cortex_tasic/seqfish_normalized_cortex_b2_testing.txt",
            "seqfish_cortex_tasic/fcortex.coordinates.txt",
            "seqfish_cortex_tasic/seqfish_cell_labels.tsv",
        ],
    )
    .dataset;
    let derived = read(&dir, &["seqfish_cortex_tasic/derived/seqfish_spatial.h5ad"]).dataset;
    assert_same_data(&sf, &derived, "seqfish");
    let tasic = read(
        &dir,
        &[
            "seqfish_cortex_tasic/tasic_scRNAseq_training_b2.txt",
            "seqfish_cortex_tasic/tasic_scRNAseq_labels.tsv",
        ],
    )
    .dataset;
    let derived = read(&dir, &["seqfish_cortex_tasic/derived/tasic_reference.h5ad"]).dataset;
    assert_same_data(&tasic, &derived, "tasic");
}

#[test]
fn imaging_cell_tables_load() {
    let Some(dir) = common::data_dir("imaging_cell_tables_load") else {
        return;
    };
    let check = |rels: &[&str], n_obs: usize, n_vars: usize| -> Summary {
        let s = read(&dir, rels).summary();
        assert_eq!((s.n_obs, s.n_vars), (n_obs, n_vars), "{rels:?}");
        assert!(s.spatial.is_some(), "{rels:?}: coordinates");
        s
    };
    // MERSCOPE: cell_by_gene + cell_metadata (center_x / center_y).
    let m = check(
        &[
            "merscope_small/small_cell_by_gene.csv",
            "merscope_small/small_cell_metadata.csv",
        ],
        450,
        20,
    );
    assert_eq!(m.spatial.as_ref().unwrap().x_max, 11279.2074317262);
    // CosMx: expression + metadata joined on cell id; the background cell 0 has no metadata.
    let c = check(
        &[
            "cosmx_lung_small/small_Lung9_Rep1_exprMat_file.csv",
            "cosmx_lung_small/small_Lung9_Rep1_metadata_file.csv",
        ],
        453,
        20,
    );
    assert!(c.warnings.iter().any(|w| w.contains("left out")));
    // CyCIF (scimap and MCMICRO), MIBI (ark), CODEX.
    check(&["cycif_hodgkin_scimap/example_data.csv"], 3029, 48);
    check(
        &["cycif_mcmicro_exemplar001/exemplar-001--unmicst_cell.csv"],
        11201,
        12,
    );
    let mibi = read(&dir, &["mibi_tnbc_ark/example_cell_table.csv"]).dataset;
    let derived = read(&dir, &["mibi_tnbc_ark/derived/mibi_tnbc.h5ad"]).dataset;
    assert_eq!(
        mibi.spatial(),
        derived.spatial(),
        "MIBI centroids: x = centroid-1, y = centroid-0"
    );
    assert_eq!(mibi.n_obs(), 3262);
    let codex = read(&dir, &["codex_spleen_goltsev/BALBc-1.csv"]).dataset;
    let derived = read(&dir, &["codex_spleen_goltsev/derived/BALBc-1.h5ad"]).dataset;
    assert_eq!(codex.spatial(), derived.spatial());
    let Some(Column::Categorical { categories, .. }) = codex.obs.column("CellType") else {
        panic!()
    };
    assert_eq!(categories.len(), 27);
    // CytoCommunity: headerless coordinates + labels.
    let s = check(
        &[
            "mibi_tnbc_cytocommunity/patient1_Coordinates.txt",
            "mibi_tnbc_cytocommunity/patient1_CellTypeLabel.txt",
        ],
        5240,
        0,
    );
    assert_eq!(s.obs.iter().filter(|c| c.kind == "categorical").count(), 1);
    // Overrides: choose coordinates and features by name.
    let opts = TableOptions {
        x_column: Some("CenterX_local_px".into()),
        y_column: Some("CenterY_local_px".into()),
        features: Some(vec!["TGFB2".into(), "KRT20".into()]),
        ..TableOptions::default()
    };
    let o = read_paths(
        &dir,
        &[
            "cosmx_lung_small/small_Lung9_Rep1_exprMat_file.csv",
            "cosmx_lung_small/small_Lung9_Rep1_metadata_file.csv",
        ],
        &opts,
    )
    .summary();
    assert_eq!(o.n_vars, 2);
    // Local FOV pixels (a 5472 px wide camera frame), not the global ones the default picks.
    assert!(
        o.spatial.as_ref().unwrap().x_max < 5472.0 && c.spatial.as_ref().unwrap().x_max > 10_000.0
    );
}

#[test]
fn bad_inputs_get_named_errors() {
    let Some(dir) = common::data_dir("bad_inputs_get_named_errors") else {
        return;
    };
    let real = std::fs::read(dir.join("rctd_visium_hippocampus/derived/spatial.h5ad")).unwrap();
    let opts = TableOptions::default();
    let err =
        |name: &str, bytes: Vec<u8>| io::read(FileSet::single(name, bytes), &opts).unwrap_err();
    // Truncated at several points: always an error naming the file, never a panic.
    for cut in [10, 100, 1000, real.len() / 2, real.len() - 10] {
        let e = err("cut.h5ad", real[..cut].to_vec());
        assert_eq!(e.file, "cut.h5ad", "{e}");
    }
    // The same cuts read from disk (the CLI's path): errors, never a panic.
    let tmp = std::env::temp_dir().join(format!("tessera-cut-{}.h5ad", std::process::id()));
    for cut in [10, 1000, real.len() / 2, real.len() - 10] {
        std::fs::write(&tmp, &real[..cut]).unwrap();
        let name = tmp.display().to_string();
        let e = io::h5ad::read_file(&tmp).unwrap_err();
        assert_eq!(e.file, name, "{e}");
        let e = io::h5ad::summary_of_file(&tmp).unwrap_err();
        assert_eq!(e.file, name, "{e}");
    }
    std::fs::write(&tmp, b"this is not hdf5 at all").unwrap();
    let e = io::h5ad::summary_of_file(&tmp).unwrap_err();
    assert!(e.message.contains("not an HDF5 file"), "{e}");
    std::fs::remove_file(&tmp).unwrap();
    let e = err("notes.h5ad", b"this is not hdf5 at all".to_vec());
    assert!(e.message.contains("not an HDF5 file"), "{e}");
    // An h5ad whose X was removed.
    let mut ds = read(&dir, &["rctd_visium_hippocampus/derived/spatial.h5ad"]).dataset;
    ds.x = None;
    let e = err("nox.h5ad", io::h5ad_write::write(&ds).unwrap());
    assert!(e.key == "X" && e.message.contains("no X"), "{e}");
    // Negative and NaN values are reported on the card.
    let mut ds = read(&dir, &["rctd_visium_hippocampus/derived/spatial.h5ad"]).dataset;
    let mut x = ds.x.take().unwrap().to_csr();
    if let Matrix::Csr(s) = &mut x {
        s.data[0] = -3.0;
        s.data[1] = f32::NAN;
    }
    ds.x = Some(x);
    let s = io::read(
        FileSet::single("neg.h5ad", io::h5ad_write::write(&ds).unwrap()),
        &opts,
    )
    .unwrap()
    .summary();
    assert!(!s.x.as_ref().unwrap().raw_counts);
    assert!(
        s.warnings.iter().any(|w| w.contains("1 negative values")),
        "{:?}",
        s.warnings
    );
    assert!(
        s.warnings.iter().any(|w| w.contains("1 NaN")),
        "{:?}",
        s.warnings
    );
    // A zip of a Space Ranger folder without its matrix.
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut z = zip::ZipWriter::new(&mut buf);
    z.start_file(
        "outs/spatial/tissue_positions_list.csv",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    z.write_all(b"AAAC-1,1,0,0,10,20\n").unwrap();
    z.finish().unwrap();
    let e = err("outs.zip", buf.into_inner());
    assert!(
        e.key == "filtered_feature_bc_matrix.h5" && e.message.contains("missing"),
        "{e}"
    );
    let e = err("outs.zip", b"PK\x03\x04garbage".to_vec());
    assert!(e.message.contains("zip"), "{e}");
    // A table with text in a numeric column and one with ragged rows.
    let e = err("cells.csv", b"cell_id,CD3,x,y\na,1,0,0\nb,2,0,0\nc,3,0,0\nd,4,0,0\ne,5,0,0\nf,6,0,0\ng,7,0,0\nh,8,0,0\ni,9,0,0\nj,10,0,0\nk,11,0,0\nl,12,0,0\nm,13,0,0\nn,14,0,0\no,15,0,0\np,16,0,0\nq,17,0,0\nr,18,0,0\ns,19,0,0\nt,20,0,0\nu,high,0,0\n".to_vec());
    assert!(
        e.key.contains("CD3") && e.message.contains("\"high\""),
        "{e}"
    );
    let e = err("cells.csv", b"cell_id,CD3\na,1\nb,2,3\n".to_vec());
    assert!(e.message.contains("ragged"), "{e}");
    let e = err("cells.csv", b"cell_id,CD3\na,1\na,2\n".to_vec());
    assert!(e.message.contains("duplicate cell id \"a\""), "{e}");
}

#[test]
fn h5ad_streamed_to_disk_is_the_same_file() {
    let Some(dir) = common::data_dir("h5ad_streamed_to_disk_is_the_same_file") else {
        return;
    };
    for rel in [
        "rctd_visium_hippocampus/derived/reference.h5ad",
        "rctd_visium_hippocampus/derived/spatial.h5ad",
    ] {
        let ds = read(&dir, &[rel]).dataset;
        let bytes = io::h5ad_write::write(&ds).unwrap();
        let tmp = std::env::temp_dir().join(format!("tessera-stream-{}.h5ad", std::process::id()));
        io::h5ad_write::write_file(ds.clone(), &tmp).unwrap();
        assert_eq!(std::fs::read(&tmp).unwrap(), bytes, "{rel}");
        let back = io::h5ad::read_file(&tmp).unwrap();
        assert_eq!(format!("{back:?}"), format!("{ds:?}"), "{rel}");
        std::fs::remove_file(&tmp).unwrap();
    }
}
