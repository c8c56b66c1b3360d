//! NumPy `.npy` (format 1.0–3.0) for dense numeric arrays: a writer, and a
//! reader of little-endian float/int arrays in C order (returned as f64).

/// Element types numpy names with a `descr` string.
pub trait NpyElement: Copy {
    const DESCR: &'static str;
    fn put(self, out: &mut Vec<u8>);
}

impl NpyElement for f32 {
    const DESCR: &'static str = "<f4";
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl NpyElement for f64 {
    const DESCR: &'static str = "<f8";
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl NpyElement for i32 {
    const DESCR: &'static str = "<i4";
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl NpyElement for i64 {
    const DESCR: &'static str = "<i8";
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

/// A 3-character unicode scalar (`<U3`), as scipy stores a sparse format name.
pub struct U3(pub [char; 3]);

impl Copy for U3 {}
impl Clone for U3 {
    fn clone(&self) -> U3 {
        *self
    }
}

impl NpyElement for U3 {
    const DESCR: &'static str = "<U3";
    fn put(self, out: &mut Vec<u8>) {
        for c in self.0 {
            out.extend_from_slice(&(c as u32).to_le_bytes());
        }
    }
}

/// Encodes a C-order array; `data.len()` must equal the product of `shape`.
pub fn write<T: NpyElement>(shape: &[usize], data: &[T]) -> Vec<u8> {
    assert_eq!(
        shape.iter().product::<usize>(),
        data.len(),
        "npy shape does not match data"
    );
    let dims = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {dims}, }}",
        T::DESCR
    );
    // Magic (6) + version (2) + length (2) + header + '\n' is padded to 64 bytes.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + std::mem::size_of_val(data));
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &v in data {
        v.put(&mut out);
    }
    out
}

/// Reorders column-major values to row-major.
fn to_c_order(shape: &[usize], v: &[f64]) -> Vec<f64> {
    let mut strides = vec![1usize; shape.len()];
    for d in 1..shape.len() {
        strides[d] = strides[d - 1] * shape[d - 1];
    }
    let mut idx = vec![0usize; shape.len()];
    let mut out = Vec::with_capacity(v.len());
    for _ in 0..v.len() {
        out.push(v[idx.iter().zip(&strides).map(|(i, s)| i * s).sum::<usize>()]);
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

/// Shape and values of a C- or Fortran-order `.npy` holding `<f4`, `<f8`, `<i4` or `<i8`.
pub fn read(name: &str, bytes: &[u8]) -> super::Result<(Vec<usize>, Vec<f64>)> {
    let bad = |m: String| super::Error::new(name, "", m);
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file (no \\x93NUMPY magic)".into()));
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(format!("unsupported .npy version {v}"))),
    };
    let header = bytes
        .get(start..start + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated or non-text header".into()))?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}':"))? + key.len() + 3;
        Some(header[at..].trim_start())
    };
    let descr = field("descr")
        .and_then(|s| s.strip_prefix('\''))
        .and_then(|s| s.split('\'').next())
        .ok_or_else(|| bad("header has no descr".into()))?;
    let fortran = field("fortran_order").is_some_and(|s| s.starts_with("True"));
    let shape_txt = field("shape")
        .and_then(|s| s.strip_prefix('('))
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("header has no shape".into()))?;
    let shape: Vec<usize> = shape_txt
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| bad(format!("bad shape entry '{s}'")))
        })
        .collect::<super::Result<_>>()?;
    let n: usize = shape.iter().product();
    let data = &bytes[start + hlen..];
    let size = match descr {
        "<f4" | "<i4" => 4,
        "<f8" | "<i8" => 8,
        d => {
            return Err(bad(format!(
                "dtype {d} is not supported (expected <f4, <f8, <i4 or <i8)"
            )))
        }
    };
    if data.len() < n * size {
        return Err(bad(format!(
            "holds {} bytes of data, shape {shape:?} needs {}",
            data.len(),
            n * size
        )));
    }
    let values: Vec<f64> = data[..n * size]
        .chunks_exact(size)
        .map(|c| match descr {
            "<f4" => f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
            "<i4" => i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
            "<f8" => f64::from_le_bytes(c.try_into().expect("8 bytes")),
            _ => i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64,
        })
        .collect();
    if fortran && shape.len() > 1 {
        return Ok((shape.clone(), to_c_order(&shape, &values)));
    }
    Ok((shape, values))
}

#[cfg(test)]
mod tests {
    use super::{read, write};

    #[test]
    fn header_is_aligned_and_describes_the_array() {
        let b = write(&[2, 3], &[1f32, 2., 3., 4., 5., 6.]);
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
        assert!(header.contains("'shape': (2, 3)") && header.contains("<f4"));
        assert_eq!(b.len(), 10 + hlen + 24);
        assert_eq!(&b[10 + hlen..10 + hlen + 4], &1f32.to_le_bytes());
    }

    #[test]
    fn reads_back_what_it_writes() {
        let bytes = write(&[2, 3], &[1f32, 2., 3., 4., 5., 6.5]);
        let (shape, v) = read("x.npy", &bytes).unwrap();
        assert_eq!(shape, vec![2, 3]);
        assert_eq!(v, vec![1., 2., 3., 4., 5., 6.5]);
        let (shape, _) = read("y.npy", &write(&[4], &[0f64; 4])).unwrap();
        assert_eq!(shape, vec![4]);
        assert!(read("z.npy", &bytes[..40]).is_err());
        assert!(read("z.npy", b"hello world").is_err());
        // A Fortran-order 2x3 array comes back in C order.
        let mut f = bytes.clone();
        let start = 10 + u16::from_le_bytes([f[8], f[9]]) as usize;
        let h = String::from_utf8_lossy(&f[10..start]).replace("False", "True ");
        f[10..start].copy_from_slice(h.as_bytes());
        for (i, v) in [1f32, 4., 2., 5., 3., 6.5].iter().enumerate() {
            f[start + 4 * i..start + 4 * (i + 1)].copy_from_slice(&v.to_le_bytes());
        }
        assert_eq!(read("f.npy", &f).unwrap().1, vec![1., 2., 3., 4., 5., 6.5]);
    }
}
