//! A set of named byte buffers: what the user dropped, a folder read from
//! disk, or the members of a zip. Readers only ever see this, so the same code
//! runs natively and in the browser (which has no filesystem).

use std::io::{Cursor, Read};

use super::error::{Context, Error, Result};

/// The largest single member we inflate from an archive (4 GiB); protects a
/// browser tab from zip bombs.
const MAX_MEMBER: u64 = 4 << 30;

/// Everything `r` inflates to, or a named error once it passes
/// [`MAX_MEMBER`]: a bomb is refused, never cut short.
fn inflate(mut r: impl Read, file: &str, key: &str) -> Result<Vec<u8>> {
    let mut out: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 1 << 18];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::new(file, key, e.to_string())),
        };
        if (out.len() + n) as u64 > MAX_MEMBER {
            return Err(Error::new(
                file,
                key,
                "inflates to more than 4 GiB (a compression bomb, or too much for one file)",
            ));
        }
        out.try_reserve(n)
            .map_err(|_| Error::new(file, key, "inflates to more than this machine can hold"))?;
        out.extend_from_slice(&buf[..n]);
    }
}

#[derive(Debug, Clone)]
pub struct NamedFile {
    /// Path inside the set, `/`-separated (`spatial/scalefactors_json.json`).
    pub path: String,
    pub bytes: Vec<u8>,
}

impl NamedFile {
    /// The last path component.
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// The name without a trailing `.gz`, lower-cased, for format detection.
    pub fn plain_name(&self) -> String {
        let n = self.name().to_lowercase();
        n.strip_suffix(".gz").map(str::to_string).unwrap_or(n)
    }

    /// The contents, gunzipped when the name ends in `.gz`.
    pub fn contents(&self) -> Result<std::borrow::Cow<'_, [u8]>> {
        if !self.path.to_lowercase().ends_with(".gz") {
            return Ok(std::borrow::Cow::Borrowed(&self.bytes));
        }
        let out = inflate(
            flate2::read::MultiGzDecoder::new(&self.bytes[..]),
            &self.path,
            "",
        )
        .map_err(|e| {
            if e.message.starts_with("inflates") {
                e
            } else {
                Error::new(
                    &e.file,
                    "",
                    format!("not a valid gzip file ({})", e.message),
                )
            }
        })?;
        Ok(std::borrow::Cow::Owned(out))
    }
}

#[derive(Debug, Clone, Default)]
pub struct FileSet {
    pub files: Vec<NamedFile>,
    /// The folder or archive the files came from, when there was one.
    pub name: Option<String>,
}

impl FileSet {
    pub fn push(&mut self, path: &str, bytes: Vec<u8>) {
        self.files.push(NamedFile {
            path: path.replace('\\', "/"),
            bytes,
        });
    }

    pub fn single(path: &str, bytes: Vec<u8>) -> FileSet {
        let mut s = FileSet::default();
        s.push(path, bytes);
        s
    }

    /// A short name for messages and cards: the single file, or the common folder.
    pub fn label(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        match self.files.as_slice() {
            [] => "(no files)".into(),
            [one] => one.path.clone(),
            many => many
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(" + "),
        }
    }

    /// First file whose plain name (no `.gz`, any case) equals `name` or ends with `_name`.
    pub fn find(&self, name: &str) -> Option<&NamedFile> {
        let suffix = format!("_{name}");
        self.files
            .iter()
            .find(|f| f.plain_name() == name)
            .or_else(|| {
                self.files
                    .iter()
                    .find(|f| f.plain_name().ends_with(&suffix))
            })
    }

    /// Replaces every `.zip` member by its entries (prefixed by nothing: a
    /// zipped Space Ranger folder keeps its inner layout).
    pub fn expand_zips(self) -> Result<FileSet> {
        let mut out = FileSet {
            files: vec![],
            name: self.name,
        };
        if let [only] = self.files.as_slice() {
            if only.path.to_lowercase().ends_with(".zip") {
                out.name.get_or_insert_with(|| only.path.clone());
            }
        }
        for f in self.files {
            if !f.path.to_lowercase().ends_with(".zip") {
                out.files.push(f);
                continue;
            }
            let mut archive = zip::ZipArchive::new(Cursor::new(&f.bytes[..]))
                .at(&f.path, "")
                .map_err(|e| {
                    Error::new(
                        &e.file,
                        "",
                        format!("not a readable zip archive ({})", e.message),
                    )
                })?;
            for i in 0..archive.len() {
                let mut entry = archive.by_index(i).at(&f.path, "")?;
                if entry.is_dir() {
                    continue;
                }
                let name = entry.name().to_string();
                // macOS archives carry resource forks that are not data.
                if name.starts_with("__MACOSX/")
                    || name.rsplit('/').next().is_some_and(|n| n.starts_with("._"))
                {
                    continue;
                }
                if entry.size() > MAX_MEMBER {
                    return Err(Error::new(&f.path, &name, "member is larger than 4 GiB"));
                }
                // The declared size is the archive's word; the inflated bytes are counted.
                let bytes = inflate(&mut entry, &f.path, &name)?;
                out.push(&name, bytes);
            }
        }
        Ok(out)
    }

    /// Reads a file, or every file under a folder (recursively), from disk.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_path(path: &std::path::Path) -> Result<FileSet> {
        let shown = path.display().to_string();
        let mut set = FileSet::default();
        if path.is_dir() {
            set.name = Some(shown.clone());
            let mut stack = vec![path.to_path_buf()];
            while let Some(dir) = stack.pop() {
                let mut entries: Vec<_> = std::fs::read_dir(&dir)
                    .at(&shown, "")?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .collect();
                entries.sort();
                for p in entries {
                    if p.is_dir() {
                        stack.push(p);
                    } else {
                        let rel = p
                            .strip_prefix(path)
                            .unwrap_or(&p)
                            .to_string_lossy()
                            .to_string();
                        set.push(&rel, std::fs::read(&p).at(&p.display().to_string(), "")?);
                    }
                }
            }
        } else {
            let bytes = std::fs::read(path).at(&shown, "")?;
            set.push(&shown, bytes);
        }
        Ok(set)
    }
}
