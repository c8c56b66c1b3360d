//! scipy's sparse `.npz` (`scipy.sparse.save_npz`) for CSR matrices: a zip
//! of `indices`, `indptr`, `format`, `shape` and `data` arrays. Graphs go
//! out in it so `scipy.sparse.load_npz` users read them as squidpy's.

use std::io::{Cursor, Read, Write};

use super::{npy, Error, Result};

/// A CSR matrix as scipy stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    pub shape: [usize; 2],
    pub indptr: Vec<usize>,
    pub indices: Vec<usize>,
    pub data: Vec<f64>,
}

pub fn write_csr(m: &Csr) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let i32s = |v: &[usize]| -> Vec<i32> { v.iter().map(|&x| x as i32).collect() };
    let entries: [(&str, Vec<u8>); 5] = [
        (
            "indices.npy",
            npy::write(&[m.indices.len()], &i32s(&m.indices)),
        ),
        (
            "indptr.npy",
            npy::write(&[m.indptr.len()], &i32s(&m.indptr)),
        ),
        ("format.npy", npy::U3(['c', 's', 'r']).npy()),
        (
            "shape.npy",
            npy::write(&[2], &[m.shape[0] as i64, m.shape[1] as i64]),
        ),
        ("data.npy", npy::write(&[m.data.len()], &m.data)),
    ];
    for (name, bytes) in entries {
        zip.start_file(name, opts).expect("in-memory zip");
        zip.write_all(&bytes).expect("in-memory zip");
    }
    zip.finish().expect("in-memory zip").into_inner()
}

pub fn read_csr(name: &str, bytes: &[u8]) -> Result<Csr> {
    let bad = |m: String| Error::new(name, "", m);
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| bad(format!("not a .npz (zip) file: {e}")))?;
    // format.npy is a 3-character scalar: 'csr', 'csc', 'coo'...
    let format = {
        let mut f = zip
            .by_name("format.npy")
            .map_err(|_| Error::new(name, "format", "missing (expected a scipy sparse .npz)"))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .map_err(|e| Error::new(name, "format", e.to_string()))?;
        buf
    };
    // scipy writes bytes ('|S3'); a unicode '<U3' name is read the same.
    let csr = format.ends_with(b"csr")
        || format.ends_with(&[b'c', 0, 0, 0, b's', 0, 0, 0, b'r', 0, 0, 0]);
    if !csr {
        return Err(Error::new(
            name,
            "format",
            "not a CSR matrix (expected format 'csr')",
        ));
    }
    let mut array = |key: &str| -> Result<Vec<f64>> {
        let mut f = zip
            .by_name(&format!("{key}.npy"))
            .map_err(|_| Error::new(name, key, "missing (expected a scipy CSR .npz)"))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .map_err(|e| Error::new(name, key, e.to_string()))?;
        Ok(npy::read(&format!("{name}/{key}.npy"), &buf)?.1)
    };
    let shape = array("shape")?;
    let mut index = |key: &str| -> Result<Vec<usize>> {
        array(key)?
            .into_iter()
            .map(|v| {
                (v >= 0.0 && v.fract() == 0.0)
                    .then_some(v as usize)
                    .ok_or_else(|| Error::new(name, key, format!("holds {v}, not an index")))
            })
            .collect()
    };
    let indptr = index("indptr")?;
    let indices = index("indices")?;
    let data = array("data")?;
    if shape.len() != 2 || indptr.len() != shape[0] as usize + 1 {
        return Err(bad(format!(
            "shape {shape:?} does not fit an indptr of length {}",
            indptr.len()
        )));
    }
    if indptr.first() != Some(&0) || indptr.windows(2).any(|w| w[0] > w[1]) {
        return Err(Error::new(
            name,
            "indptr",
            "must start at 0 and never decrease",
        ));
    }
    let nnz = *indptr.last().unwrap_or(&0);
    if indices.len() != nnz || data.len() != nnz || indices.iter().any(|&j| j >= shape[1] as usize)
    {
        return Err(bad("indices, data and indptr disagree".into()));
    }
    Ok(Csr {
        shape: [shape[0] as usize, shape[1] as usize],
        indptr,
        indices,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let m = Csr {
            shape: [3, 4],
            indptr: vec![0, 2, 2, 3],
            indices: vec![1, 3, 0],
            data: vec![0.5, 2.0, -1.0],
        };
        assert_eq!(read_csr("g.npz", &write_csr(&m)).unwrap(), m);
        assert!(read_csr("g.npz", b"not a zip").is_err());
        // Rebuilds the archive with one member replaced.
        let with = |member: &str, bytes: Vec<u8>| -> Vec<u8> {
            let src = write_csr(&m);
            let mut old = zip::ZipArchive::new(Cursor::new(&src[..])).unwrap();
            let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
            for i in 0..old.len() {
                let mut f = old.by_index(i).unwrap();
                let fname = f.name().to_string();
                let mut b = Vec::new();
                f.read_to_end(&mut b).unwrap();
                out.start_file(fname.as_str(), zip::write::SimpleFileOptions::default())
                    .unwrap();
                out.write_all(if fname == member { &bytes } else { &b })
                    .unwrap();
            }
            out.finish().unwrap().into_inner()
        };
        let err = |bytes: Vec<u8>| read_csr("g.npz", &bytes).unwrap_err().to_string();
        let csc = err(with("format.npy", npy::U3(['c', 's', 'c']).npy()));
        assert!(csc.contains("format") && csc.contains("csr"), "{csc}");
        let bad_ptr = err(with("indptr.npy", npy::write(&[4], &[0i32, 2, 1, 3])));
        assert!(bad_ptr.contains("indptr"), "{bad_ptr}");
        let negative = err(with("indices.npy", npy::write(&[3], &[1i32, -3, 0])));
        assert!(
            negative.contains("indices") && negative.contains("-3"),
            "{negative}"
        );
        let range = err(with("indices.npy", npy::write(&[3], &[1i32, 9, 0])));
        assert!(range.contains("disagree"), "{range}");
    }
}
