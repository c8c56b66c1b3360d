//! What a share link holds: the analysis and its parameters, where the
//! inputs come from, and how the results were shown. It travels in the URL
//! fragment as deflated JSON in base64url, so it never reaches a server.
//!
//! A link is data, never code: every field is parsed into a closed set of
//! types and range-checked, and URLs must be plain https.

use std::io::{Read, Write};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::analysis::checks::text as check_text;
pub use crate::analysis::Params;
use crate::analysis::Slot;

pub const VERSION: u32 = 1;
/// Longest fragment accepted (browsers allow more; no honest link needs it).
const MAX_LINK: usize = 16 * 1024;
const MAX_JSON: u64 = 64 * 1024;
const MAX_URL: usize = 2048;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub v: u32,
    pub run: Run,
    #[serde(default)]
    pub view: View,
}

/// One analysis run: what the page sends the worker and what a link replays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    pub params: Params,
    pub inputs: Inputs,
    #[serde(default)]
    pub device: DeviceChoice,
}

/// Where the browser runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    /// WebGPU, or the CPU with a notice when the browser has none.
    #[default]
    Webgpu,
    /// The CPU device (faster than a software WebGPU on small problems).
    Cpu,
}

/// Where one input of a run comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// Tessera's demo tissue (spatial side) or its reference (generated,
    /// identical everywhere).
    Demo,
    /// A public file the page fetches.
    Url { url: String },
    /// Files on the sharer's machine: a link can name them, not carry them.
    Local { files: Vec<String> },
}

impl Source {
    /// Whether a link can load it again on another machine.
    pub fn is_public(&self) -> bool {
        !matches!(self, Source::Local { .. })
    }

    fn validate(&self, what: &str) -> Result<(), String> {
        match self {
            Source::Demo => Ok(()),
            Source::Url { url } => check_url(what, url),
            Source::Local { files } => {
                if files.is_empty() || files.len() > 64 {
                    return Err(format!("{what}: expected 1 to 64 file names"));
                }
                files.iter().try_for_each(|f| check_text("a file name", f))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    /// The single-cell reference (Tangram); None for one-dataset analyses.
    pub sc: Option<Source>,
    /// The spatial data (the transcripts for multi-omics).
    pub sp: Source,
    /// The protein data (multi-omics only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prot: Option<Source>,
}

impl Inputs {
    /// The source a slot reads from.
    pub fn get(&self, slot: Slot) -> Option<&Source> {
        match slot {
            Slot::Spatial => Some(&self.sp),
            Slot::Reference => self.sc.as_ref(),
            Slot::Proteins => self.prot.as_ref(),
        }
    }
}

/// How results are shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct View {
    /// A column of the shown layer, or None for the dominant category.
    pub color: Option<String>,
    /// Percentile of the values mapped to the top colour (cell2location's p99.2).
    pub vmax_pct: f64,
    pub zoom: f64,
    /// Centre of the view in data units (None: the data's centre).
    pub center: Option<[f64; 2]>,
    /// Up to six columns drawn together, each in its own colour (as
    /// cell2location's `plot_spatial`); when set it replaces `color`.
    #[serde(default)]
    pub overlay: Vec<String>,
    /// Which of the result's layers is shown (None: the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// Leave out the tissue image under the points.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hide_image: bool,
}

/// The most columns one overlay panel shows.
pub const MAX_OVERLAY: usize = 6;

impl Default for View {
    fn default() -> Self {
        View {
            color: None,
            vmax_pct: 99.2,
            zoom: 1.0,
            center: None,
            overlay: vec![],
            layer: None,
            hide_image: false,
        }
    }
}

/// A public https URL, nothing else (no http:, javascript:, data:, blob:
/// or file:): what a link loads is encrypted and named for the user to see.
pub fn check_url(what: &str, url: &str) -> Result<(), String> {
    let host = url
        .strip_prefix("https://")
        .map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    if host.is_none_or(|h| h.is_empty() || h.contains('@'))
        || url.len() > MAX_URL
        || url
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return Err(format!(
            "{what} must be an https:// address of at most {MAX_URL} characters (got '{}')",
            url.chars().take(80).collect::<String>().escape_default()
        ));
    }
    Ok(())
}

impl View {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(c) = &self.color {
            check_text("the colour column", c)?;
        }
        if let Some(l) = &self.layer {
            check_text("the layer", l)?;
        }
        if self.overlay.len() > MAX_OVERLAY {
            return Err(format!(
                "{} overlaid columns: at most {MAX_OVERLAY}",
                self.overlay.len()
            ));
        }
        for c in &self.overlay {
            check_text("an overlaid column", c)?;
        }
        if !(self.vmax_pct > 0.0 && self.vmax_pct <= 100.0) {
            return Err(format!(
                "vmax percentile {}: expected (0, 100]",
                self.vmax_pct
            ));
        }
        if !(self.zoom.is_finite() && (0.01..=10_000.0).contains(&self.zoom)) {
            return Err(format!("zoom {}: expected 0.01 to 10000", self.zoom));
        }
        if self
            .center
            .is_some_and(|c| !c.iter().all(|v| v.is_finite()))
        {
            return Err("the view centre is not a finite point".into());
        }
        Ok(())
    }
}

impl Run {
    pub fn validate(&self) -> Result<(), String> {
        self.params.validate()?;
        let info = self.params.info();
        for input in info.inputs {
            if self.inputs.get(input.slot).is_none() {
                return Err(format!(
                    "{} needs the {}",
                    info.name,
                    input.label.to_lowercase()
                ));
            }
        }
        if let Some(sc) = &self.inputs.sc {
            sc.validate("the reference")?;
        }
        if let Some(p) = &self.inputs.prot {
            p.validate("the protein data")?;
        }
        self.inputs.sp.validate("the spatial data")?;
        Ok(())
    }
}

impl Link {
    pub fn validate(&self) -> Result<(), String> {
        if self.v != VERSION {
            return Err(format!(
                "link version {} (this page reads version {VERSION})",
                self.v
            ));
        }
        self.run.validate()?;
        self.view.validate()
    }

    /// The fragment payload (without `#link=`).
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("link serialises");
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&json).expect("in-memory deflate");
        base64url(&z.finish().expect("in-memory deflate"))
    }

    /// Parses and checks a fragment payload; the error says what is wrong.
    pub fn decode(payload: &str) -> Result<Link, String> {
        if payload.len() > MAX_LINK {
            return Err(format!("the link is longer than {MAX_LINK} characters"));
        }
        let bytes = unbase64url(payload).ok_or("the link is not valid base64url text")?;
        let mut json = Vec::new();
        flate2::read::DeflateDecoder::new(&bytes[..])
            .take(MAX_JSON + 1)
            .read_to_end(&mut json)
            .map_err(|_| "the link's payload is not deflated data (was it cut short?)")?;
        if json.len() as u64 > MAX_JSON {
            return Err("the link's payload is too large".into());
        }
        let link: Link = serde_json::from_slice(&json)
            .map_err(|e| format!("the link's settings are not understood: {e}"))?;
        link.validate()?;
        Ok(link)
    }
}

/// URL-safe base64 without padding (a trailing `=` is tolerated on read).
fn base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unbase64url(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An analysis' defaults with some fields set (tests name no model).
    fn params(analysis: &str, fields: serde_json::Value) -> Params {
        let mut v = serde_json::to_value(Params::default_of(analysis).unwrap()).unwrap();
        for (k, f) in fields.as_object().unwrap() {
            v[k] = f.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    fn link() -> Link {
        Link {
            v: VERSION,
            run: Run {
                params: params("tangram", serde_json::json!({"cluster_label": "cell_type"})),
                inputs: Inputs {
                    sc: Some(Source::Url {
                        url: "https://example.org/sc.h5ad".into(),
                    }),
                    sp: Source::Url {
                        url: "https://example.org/sp.h5ad".into(),
                    },
                    prot: None,
                },
                device: DeviceChoice::Cpu,
            },
            view: View {
                color: Some("CA1".into()),
                zoom: 2.5,
                center: Some([10.0, -3.5]),
                overlay: vec!["CA1".into(), "DG".into()],
                ..Default::default()
            },
        }
    }

    #[test]
    fn base64url_round_trips_every_length() {
        for n in 0..40u8 {
            let bytes: Vec<u8> = (0..n).map(|i| i.wrapping_mul(97).wrapping_add(3)).collect();
            assert_eq!(
                unbase64url(&base64url(&bytes)).unwrap(),
                bytes,
                "length {n}"
            );
        }
        assert!(unbase64url("a*b").is_none());
    }

    #[test]
    fn links_round_trip() {
        let l = link();
        let s = l.encode();
        assert!(s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(Link::decode(&s).unwrap(), l);
        let demo = Link {
            run: Run {
                inputs: Inputs {
                    sc: Some(Source::Demo),
                    sp: Source::Local {
                        files: vec!["spatial.h5ad".into()],
                    },
                    prot: None,
                },
                ..l.run.clone()
            },
            ..l
        };
        assert_eq!(Link::decode(&demo.encode()).unwrap(), demo);
    }

    #[test]
    fn bad_links_are_refused_with_a_reason() {
        let enc = |json: &str| {
            let mut z = flate2::write::DeflateEncoder::new(Vec::new(), Default::default());
            z.write_all(json.as_bytes()).unwrap();
            base64url(&z.finish().unwrap())
        };
        assert!(Link::decode("%%%").unwrap_err().contains("base64url"));
        assert!(Link::decode("AAAA").unwrap_err().contains("deflated"));
        assert!(Link::decode(&enc("{\"v\":1}"))
            .unwrap_err()
            .contains("not understood"));
        let mut l = link();
        l.run.inputs.sc = Some(Source::Url {
            url: "javascript:alert(1)".into(),
        });
        assert!(Link::decode(&l.encode())
            .unwrap_err()
            .contains("https:// address"));
        for bad in [
            "http://example.org/a.h5ad",
            "https://example.org@evil.example/a.h5ad",
            "https:///a.h5ad",
            "https://example.org/a b.h5ad",
            "HTTPS://example.org/a.h5ad",
        ] {
            assert!(check_url("u", bad).is_err(), "{bad}");
        }
        assert!(check_url("u", "https://example.org:8443/d/a.h5ad?x=1#y").is_ok());
        let mut l = link();
        l.run.inputs.sp = Source::Local { files: vec![] };
        assert!(Link::decode(&l.encode())
            .unwrap_err()
            .contains("file names"));
        let mut l = link();
        l.view.overlay = vec!["x".into(); 7];
        assert!(Link::decode(&l.encode()).unwrap_err().contains("at most 6"));
        let mut l = link();
        l.view.vmax_pct = 250.0;
        assert!(Link::decode(&l.encode()).unwrap_err().contains("vmax"));
        let mut l = link();
        l.run.params = params(
            "tangram",
            serde_json::json!({"cluster_label": "cell_type", "num_epochs": 0}),
        );
        assert!(Link::decode(&l.encode()).unwrap_err().contains("epochs"));
        let mut l = link();
        l.run.params = params("tangram", serde_json::json!({}));
        assert!(Link::decode(&l.encode())
            .unwrap_err()
            .contains("cluster label"));
        // Unknown fields are refused, not ignored.
        let json = serde_json::to_string(&link()).unwrap().replacen(
            "\"v\":1",
            "\"v\":1,\"script\":\"x\"",
            1,
        );
        assert!(Link::decode(&enc(&json))
            .unwrap_err()
            .contains("unknown field"));
        // Spatial statistics: one dataset, squidpy's defaults, checked fields.
        let mut l = link();
        l.run.inputs.sc = None;
        l.run.params = params("nhood", serde_json::json!({"cluster_key": "cell_type"}));
        assert_eq!(Link::decode(&l.encode()).unwrap(), l);
        l.run.params = params(
            "nhood",
            serde_json::json!({"cluster_key": "cell_type", "graph": "radius"}),
        );
        assert!(Link::decode(&l.encode())
            .unwrap_err()
            .contains("positive radius"));
        let mut l = link();
        l.v = 9;
        assert!(Link::decode(&l.encode()).unwrap_err().contains("version 9"));
    }
}
