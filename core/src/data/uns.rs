//! `uns`: unstructured, nested annotations (scalefactors, images, parameters).

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Dict(BTreeMap<String, Value>),
    Str(String),
    Strings(Vec<String>),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A numeric array (any rank) stored row-major.
    Floats {
        shape: Vec<usize>,
        data: Vec<f64>,
    },
    Ints {
        shape: Vec<usize>,
        data: Vec<i64>,
    },
    /// 8-bit arrays, notably images as height x width x channels.
    Bytes {
        shape: Vec<usize>,
        data: Vec<u8>,
    },
}

impl Value {
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(d) => d.get(key),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(v) => Some(*v),
            Value::Int(v) => Some(*v as f64),
            Value::Floats { data, .. } if data.len() == 1 => Some(data[0]),
            Value::Ints { data, .. } if data.len() == 1 => Some(data[0] as f64),
            _ => None,
        }
    }

    /// Shape of an array value (images: height, width, channels).
    pub fn shape(&self) -> Option<&[usize]> {
        match self {
            Value::Floats { shape, .. }
            | Value::Ints { shape, .. }
            | Value::Bytes { shape, .. } => Some(shape),
            _ => None,
        }
    }

    pub fn from_json(v: &serde_json::Value) -> Value {
        use serde_json::Value as J;
        match v {
            J::Null => Value::Strings(vec![]),
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::Str(s.clone()),
            J::Array(a) if a.iter().all(|x| x.is_string()) => Value::Strings(
                a.iter()
                    .map(|x| x.as_str().unwrap_or_default().to_string())
                    .collect(),
            ),
            J::Array(a) => Value::Floats {
                shape: vec![a.len()],
                data: a.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect(),
            },
            J::Object(o) => Value::Dict(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }
}
