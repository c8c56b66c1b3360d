//! NumPy `.npy` for dense numeric arrays, through ndarray-npy: a writer of
//! C-order arrays, and a reader of little-endian float/int arrays in C or
//! Fortran order (returned as f64 in C order). Written by hand here: scipy's
//! 3-character sparse format name (`<U3`), a dtype ndarray-npy does not
//! handle, and the header check that runs before ndarray-npy allocates.

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use ndarray_npy::{ReadNpyError, ReadNpyExt, ReadableElement, WritableElement, WriteNpyExt};

/// A 3-character unicode scalar (`<U3`), as scipy stores a sparse format name.
#[derive(Clone, Copy)]
pub struct U3(pub [char; 3]);

impl U3 {
    /// The 0-d `.npy` holding this name.
    pub fn npy(self) -> Vec<u8> {
        let header = "{'descr': '<U3', 'fortran_order': False, 'shape': (), }";
        // Magic (6) + version (2) + length (2) + header + '\n', padded to 64.
        let pad = (64 - (10 + header.len() + 1) % 64) % 64;
        let header = format!("{header}{}\n", " ".repeat(pad));
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        for c in self.0 {
            out.extend_from_slice(&(c as u32).to_le_bytes());
        }
        out
    }
}

/// Encodes a C-order array; `data.len()` must equal the product of `shape`.
pub fn write<T: WritableElement>(shape: &[usize], data: &[T]) -> Vec<u8> {
    let view = ArrayViewD::from_shape(IxDyn(shape), data).expect("npy shape does not match data");
    let mut out = Vec::with_capacity(128 + std::mem::size_of_val(data));
    view.write_npy(&mut out).expect("in-memory .npy");
    out
}

/// An array's shape and its values in C order.
type Shaped = (Vec<usize>, Vec<f64>);

/// The dtype and the number of data bytes a header declares, read before
/// anything is allocated: ndarray-npy sizes its buffer from the shape, so a
/// small file that claims a huge shape must be refused first.
fn declared(bytes: &[u8]) -> Result<(String, usize), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes
        .get(start..start.saturating_add(len))
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("truncated or non-text header")?;
    let after = |key: &str| {
        let at = header.find(&format!("'{key}':"))? + key.len() + 3;
        Some(header[at..].trim_start())
    };
    let descr = after("descr")
        .and_then(|s| s.strip_prefix('\''))
        .and_then(|s| s.split('\'').next())
        .ok_or("the header has no descr")?;
    let size = match descr {
        "<f4" | "<i4" => 4,
        "<f8" | "<i8" => 8,
        d => {
            return Err(format!(
                "dtype {d} is not supported (expected <f4, <f8, <i4 or <i8)"
            ))
        }
    };
    let shape = after("shape")
        .and_then(|s| s.strip_prefix('('))
        .and_then(|s| s.split(')').next())
        .ok_or("the header has no shape")?;
    let n = shape
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .try_fold(size, |acc: usize, d| {
            let d: usize = d.parse().map_err(|_| format!("bad shape entry '{d}'"))?;
            acc.checked_mul(d)
                .ok_or_else(|| format!("shape ({shape}) is too large"))
        })?;
    let data = bytes.len() - (start + len).min(bytes.len());
    if data < n {
        return Err(format!(
            "holds {data} bytes of data, shape ({shape}) needs {n}"
        ));
    }
    Ok((descr.to_string(), n))
}

fn read_as<T: ReadableElement + Copy>(
    bytes: &[u8],
    to_f64: fn(T) -> f64,
) -> Result<Shaped, ReadNpyError> {
    let a = ArrayD::<T>::read_npy(bytes)?;
    // `iter` walks the logical (C) order whatever the memory order.
    Ok((a.shape().to_vec(), a.iter().map(|&v| to_f64(v)).collect()))
}

/// Shape and values of a C- or Fortran-order `.npy` holding `<f4`, `<f8`,
/// `<i4` or `<i8`.
pub fn read(name: &str, bytes: &[u8]) -> super::Result<Shaped> {
    let (descr, _) = declared(bytes).map_err(|e| super::Error::new(name, "", e))?;
    match descr.as_str() {
        "<f8" => read_as::<f64>(bytes, |v| v),
        "<f4" => read_as::<f32>(bytes, f64::from),
        "<i8" => read_as::<i64>(bytes, |v| v as f64),
        _ => read_as::<i32>(bytes, f64::from),
    }
    .map_err(|e| super::Error::new(name, "", format!("not a readable .npy: {e}")))
}

#[cfg(test)]
mod tests {
    use super::{read, write, U3};

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
        // A header that claims more data than the file holds is refused
        // before anything is allocated for it.
        let mut huge = write(&[4], &[0f64; 4]);
        let hlen = u16::from_le_bytes([huge[8], huge[9]]) as usize;
        let text = String::from_utf8(huge[10..10 + hlen].to_vec())
            .unwrap()
            .replace("(4,)", "(9999999999999,)");
        let text = format!("{:<w$}\n", text.trim_end(), w = hlen - 1);
        huge.splice(10..10 + hlen, text.bytes());
        let e = read("h.npy", &huge).unwrap_err().to_string();
        assert!(
            e.contains("bytes of data") && e.contains("9999999999999"),
            "{e}"
        );
        let e = read("u.npy", &U3(['c', 's', 'r']).npy())
            .unwrap_err()
            .to_string();
        assert!(e.contains("<U3 is not supported"), "{e}");
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
