//! Reading the keys a condition compares out of a JSON column's text.
//!
//! Only the keys on a compared path are read into values; everything else
//! is skipped as serde_json parses it, and strings without escapes are
//! borrowed from the text.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::eval::Cell;

/// The paths a condition reads from one JSON column, as a tree of keys;
/// each path has a slot, `0..slots`.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub(super) column: String,
    /// `nodes[0]` is the column's object.
    nodes: Vec<Node>,
    pub(super) slots: usize,
}

#[derive(Debug, Clone, Default)]
struct Node {
    children: Vec<(String, usize)>,
    /// The slot of the path ending here.
    slot: Option<usize>,
}

impl Plan {
    pub(super) fn new(column: &str) -> Self {
        Self {
            column: column.to_string(),
            nodes: vec![Node::default()],
            slots: 0,
        }
    }

    /// The slot of `path` (keys below the column), added if new.
    pub(super) fn insert(&mut self, path: &[String]) -> usize {
        let mut node = 0;
        for key in path {
            node = match self.child(node, key) {
                Some(child) => child,
                None => {
                    self.nodes.push(Node::default());
                    let child = self.nodes.len() - 1;
                    self.nodes[node].children.push((key.clone(), child));
                    child
                }
            };
        }
        if let Some(slot) = self.nodes[node].slot {
            return slot;
        }
        self.slots += 1;
        self.nodes[node].slot = Some(self.slots - 1);
        self.slots - 1
    }

    fn child(&self, node: usize, key: &str) -> Option<usize> {
        self.nodes[node]
            .children
            .iter()
            .find(|(k, _)| k == key)
            .map(|&(_, child)| child)
    }
}

/// A value read from JSON.
#[derive(Debug, Clone)]
pub(super) enum Leaf<'a> {
    /// Absent, or `null`.
    Missing,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    /// An object or array, as compact JSON.
    Json(String),
}

impl Leaf<'_> {
    pub(super) fn cell(&self) -> Cell<'_> {
        match self {
            Leaf::Missing => Cell::Missing,
            Leaf::Bool(b) => Cell::Bool(*b),
            Leaf::Int(v) => Cell::Int(*v),
            Leaf::Float(v) => Cell::Float(*v),
            Leaf::Str(s) => Cell::Str(s),
            Leaf::Json(s) => Cell::Json(s),
        }
    }

    fn of_value(value: &serde_json::Value) -> Leaf<'static> {
        use serde_json::Value as V;
        match value {
            V::Null => Leaf::Missing,
            V::Bool(b) => Leaf::Bool(*b),
            V::Number(n) => match n.as_i64() {
                Some(v) => Leaf::Int(v),
                None => n.as_f64().map_or(Leaf::Missing, Leaf::Float),
            },
            V::String(s) => Leaf::Str(Cow::Owned(s.clone())),
            V::Array(_) | V::Object(_) => Leaf::Json(value.to_string()),
        }
    }
}

/// Fill `slots` (`plan.slots` of them, all missing) with the paths' values
/// in `text`. False, with every slot missing, when `text` is not JSON; a
/// JSON value other than an object leaves them missing.
pub(super) fn walk<'a>(plan: &Plan, text: &'a str, slots: &mut [Leaf<'a>]) -> bool {
    let mut de = serde_json::Deserializer::from_str(text);
    let read = NodeSeed {
        plan,
        node: 0,
        slots: &mut *slots,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    if read.is_err() {
        slots.iter_mut().for_each(|s| *s = Leaf::Missing);
    }
    read.is_ok()
}

/// The value at a node of the plan: its paths' values go into `slots`.
struct NodeSeed<'p, 's, 'a> {
    plan: &'p Plan,
    node: usize,
    slots: &'s mut [Leaf<'a>],
}

impl<'a> DeserializeSeed<'a> for NodeSeed<'_, '_, 'a> {
    type Value = ();

    fn deserialize<D: Deserializer<'a>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// Anything but an object has no keys: skipped.
impl<'a> Visitor<'a> for NodeSeed<'_, '_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'a>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'a>>(self, mut map: A) -> Result<(), A::Error> {
        let NodeSeed { plan, node, slots } = self;
        while let Some(Key(key)) = map.next_key()? {
            let Some(child) = plan.child(node, &key) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let here = &plan.nodes[child];
            match (here.slot, here.children.is_empty()) {
                (Some(slot), true) => slots[slot] = map.next_value_seed(LeafSeed)?,
                (None, false) => map.next_value_seed(NodeSeed {
                    plan,
                    node: child,
                    slots: &mut *slots,
                })?,
                // Compared itself and below: rare, read as a whole.
                _ => {
                    let value: serde_json::Value = map.next_value()?;
                    fill(plan, child, &value, slots);
                }
            }
        }
        Ok(())
    }
}

/// The paths below `node` from a parsed value.
fn fill(plan: &Plan, node: usize, value: &serde_json::Value, slots: &mut [Leaf<'_>]) {
    let here = &plan.nodes[node];
    if let Some(slot) = here.slot {
        slots[slot] = Leaf::of_value(value);
    }
    for (key, child) in &here.children {
        if let Some(v) = value.get(key.as_str()) {
            fill(plan, *child, v, slots);
        }
    }
}

/// An object's key, borrowed from the text unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'a> Deserialize<'a> for Key<'a> {
    fn deserialize<D: Deserializer<'a>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'a> Visitor<'a> for KeyVisitor {
            type Value = Key<'a>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }

            fn visit_borrowed_str<E>(self, v: &'a str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// A compared path's value.
struct LeafSeed;

impl<'a> DeserializeSeed<'a> for LeafSeed {
    type Value = Leaf<'a>;

    fn deserialize<D: Deserializer<'a>>(self, deserializer: D) -> Result<Leaf<'a>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'a> Visitor<'a> for LeafSeed {
    type Value = Leaf<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Leaf<'a>, E> {
        Ok(Leaf::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Leaf<'a>, E> {
        Ok(Leaf::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Leaf<'a>, E> {
        Ok(i64::try_from(v).map_or(Leaf::Float(v as f64), Leaf::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Leaf<'a>, E> {
        Ok(Leaf::Float(v))
    }

    fn visit_borrowed_str<E>(self, v: &'a str) -> Result<Leaf<'a>, E> {
        Ok(Leaf::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Leaf<'a>, E> {
        Ok(Leaf::Str(Cow::Owned(v.to_string())))
    }

    fn visit_unit<E>(self) -> Result<Leaf<'a>, E> {
        Ok(Leaf::Missing)
    }

    fn visit_seq<A: SeqAccess<'a>>(self, seq: A) -> Result<Leaf<'a>, A::Error> {
        let value = serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(Leaf::Json(value.to_string()))
    }

    fn visit_map<A: MapAccess<'a>>(self, map: A) -> Result<Leaf<'a>, A::Error> {
        let value = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Leaf::Json(value.to_string()))
    }
}
