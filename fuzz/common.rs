//! Shared by the crates' fuzz tests (`pod/tests/fuzz_*.rs`, `runtime/tests/fuzz_config.rs`, included by path): the proptest
//! config (case count from `PROPTEST_CASES`, failures persisted next to the test) and mutations of JSON trees
//! (values replaced, fields and items removed or added, subtrees copied over others) and of their text.
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{json, Value};

/// Cases per property when `PROPTEST_CASES` is not set.
pub const DEFAULT_CASES: u32 = 256;

/// `PROPTEST_CASES` (read by proptest itself) or [`DEFAULT_CASES`]; failures appended to `regressions`
/// (an absolute path: `concat!(env!("CARGO_MANIFEST_DIR"), "/tests/proptest-regressions/<test>.txt")`).
pub fn config(regressions: &'static str) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = DEFAULT_CASES;
    }
    c.failure_persistence = Some(Box::new(FileFailurePersistence::Direct(regressions)));
    c
}

/// JSON values from scalars of every kind (`strings` for the interesting ones) up to small trees whose
/// object keys come from `keys`.
pub fn weird_value(keys: &'static [&'static str], strings: &'static [&'static str]) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-70_000i64..70_000).prop_map(|n| json!(n)),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        prop::sample::select(strings).prop_map(|s| json!(s)),
        prop::sample::select(strings).prop_map(|s| json!(s)),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 12, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(keys).prop_map(String::from), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// One change to a JSON tree; nodes are picked by index in pre-order.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Replace the node with this value.
    Replace(Index, Value),
    /// Remove the node from its parent.
    Remove(Index),
    /// Insert a field (into an object) or an item (into an array); a scalar is replaced.
    Insert(Index, &'static str, Value),
    /// Copy one node over another.
    Copy(Index, Index),
}

pub fn mutation(keys: &'static [&'static str], strings: &'static [&'static str]) -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), weird_value(keys, strings)).prop_map(|(i, v)| Mutation::Replace(i, v)),
        2 => any::<Index>().prop_map(Mutation::Remove),
        2 => (any::<Index>(), prop::sample::select(keys), weird_value(keys, strings))
            .prop_map(|(i, k, v)| Mutation::Insert(i, k, v)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Copy(a, b)),
    ]
}

#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    At(usize),
}

fn paths(v: &Value, here: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                here.push(Seg::Key(k.clone()));
                paths(c, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                here.push(Seg::At(i));
                paths(c, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn node_mut<'v>(v: &'v mut Value, path: &[Seg]) -> &'v mut Value {
    path.iter().fold(v, |v, s| match s {
        Seg::Key(k) => &mut v[k.as_str()],
        Seg::At(i) => &mut v[*i],
    })
}

/// Applies `m` to `doc`.
pub fn mutate(doc: &mut Value, m: &Mutation) {
    let mut all = Vec::new();
    paths(doc, &mut Vec::new(), &mut all);
    match m {
        Mutation::Replace(i, v) => *node_mut(doc, &all[i.index(all.len())]) = v.clone(),
        Mutation::Remove(i) => {
            let path = &all[i.index(all.len())];
            if let Some((last, parent)) = path.split_last() {
                match (node_mut(doc, parent), last) {
                    (Value::Object(o), Seg::Key(k)) => {
                        o.remove(k);
                    }
                    (Value::Array(a), Seg::At(i)) => {
                        a.remove(*i);
                    }
                    _ => {}
                }
            }
        }
        Mutation::Insert(i, k, v) => match node_mut(doc, &all[i.index(all.len())]) {
            Value::Object(o) => {
                o.insert(k.to_string(), v.clone());
            }
            Value::Array(a) => a.push(v.clone()),
            other => *other = v.clone(),
        },
        Mutation::Copy(from, to) => {
            let v = node_mut(doc, &all[from.index(all.len())]).clone();
            *node_mut(doc, &all[to.index(all.len())]) = v;
        }
    }
}

/// A text edit: a token inserted, a few bytes deleted, a character inserted.
#[derive(Debug, Clone)]
pub enum Splice {
    Insert(Index, &'static str),
    Delete(Index, usize),
    Char(Index, char),
}

pub fn splice(tokens: &'static [&'static str]) -> impl Strategy<Value = Splice> {
    prop_oneof![
        3 => (any::<Index>(), prop::sample::select(tokens)).prop_map(|(i, t)| Splice::Insert(i, t)),
        1 => (any::<Index>(), 1usize..20).prop_map(|(i, n)| Splice::Delete(i, n)),
        1 => (any::<Index>(), any::<char>()).prop_map(|(i, c)| Splice::Char(i, c)),
    ]
}

/// Applies `s` to `text` (on character boundaries).
pub fn apply_splice(text: &mut String, s: &Splice) {
    let at = |i: &Index, t: &String| {
        let mut p = i.index(t.len() + 1);
        while !t.is_char_boundary(p) {
            p -= 1;
        }
        p
    };
    match s {
        Splice::Insert(i, tok) => {
            let p = at(i, text);
            text.insert_str(p, tok);
        }
        Splice::Delete(i, n) => {
            let p = at(i, text);
            let mut end = (p + n).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            text.replace_range(p..end, "");
        }
        Splice::Char(i, c) => {
            let p = at(i, text);
            text.insert(p, *c);
        }
    }
}
