//! Objects stay objects: a `Deserializer` wrapper under which a struct accepts only a JSON
//! object.
//!
//! serde's derived `Deserialize` for a struct also accepts a *sequence* of its fields in
//! declaration order, and serde_json hands it one whenever the document holds an array there:
//! `["4111111111111111","12/30"]` would parse as a card-data plaintext and
//! `"tokenRequestor": ["50110030273","Apple Pay","APPLE_PAY"]` as a token requestor. The contract
//! defines those as objects, and a positional form skips `deny_unknown_fields` and every member
//! name check. [`ObjectsOnly`] wraps a deserializer all the way down (every nested value, map
//! key and value, sequence element and enum variant goes through it) and refuses a sequence
//! wherever a struct or a struct variant is asked for. Sequences where the type is a sequence
//! (a `Vec`, a tuple) are untouched.
//!
//! What is buffered by serde itself before its type is known (`#[serde(flatten)]` members, the
//! `data` of an adjacently tagged enum) no longer passes through this wrapper: such a member's
//! type opts in with [`object`] as its `deserialize_with`.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Unexpected, VariantAccess, Visitor,
};

/// What a refused sequence was expected to be.
const AN_OBJECT: &str = "a JSON object";

/// Deserializes `T` from `deserializer`, refusing a sequence wherever `T` (or anything inside
/// it) expects a struct. For `#[serde(deserialize_with = "…")]` on members serde buffers.
pub fn object<'de, D: Deserializer<'de>, T: de::Deserialize<'de>>(deserializer: D) -> Result<T, D::Error> {
    T::deserialize(ObjectsOnly(deserializer))
}

/// A deserializer under which every struct is an object (see the module documentation).
pub struct ObjectsOnly<D>(pub D);

/// A visitor passed on by [`ObjectsOnly`]: refuses a sequence when it stands for a struct, and
/// wraps whatever it is handed to go deeper.
struct Guard<V> {
    inner: V,
    struct_expected: bool,
}

impl<V> Guard<V> {
    fn any(inner: V) -> Self {
        Guard { inner, struct_expected: false }
    }
    fn object(inner: V) -> Self {
        Guard { inner, struct_expected: true }
    }
}

/// A seed whose deserializer is wrapped.
struct Seed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(ObjectsOnly(deserializer))
    }
}

macro_rules! forward {
    ($($method:ident),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.0.$method(Guard::any(visitor))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for ObjectsOnly<D> {
    type Error = D::Error;

    forward!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier,
        deserialize_ignored_any,
    );

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit_struct(name, Guard::any(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_newtype_struct(name, Guard::any(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, Guard::any(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple_struct(name, len, Guard::any(visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_struct(name, fields, Guard::object(visitor))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_enum(name, variants, Guard::any(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

macro_rules! pass {
    ($($method:ident($ty:ty)),* $(,)?) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Guard<V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(formatter)
    }

    pass!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_str(&str),
        visit_borrowed_str(&'de str),
        visit_string(String),
        visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]),
        visit_byte_buf(Vec<u8>),
    );

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.inner.visit_some(ObjectsOnly(deserializer))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.inner.visit_newtype_struct(ObjectsOnly(deserializer))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        if self.struct_expected {
            return Err(de::Error::invalid_type(Unexpected::Seq, &AN_OBJECT));
        }
        self.inner.visit_seq(Elements(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(Entries(map))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(Variants(data))
    }
}

/// The elements of a sequence, each through [`ObjectsOnly`].
struct Elements<A>(A);

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Elements<A> {
    type Error = A::Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Seed(seed))
    }
    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

/// The keys and values of a map, each through [`ObjectsOnly`].
struct Entries<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Entries<A> {
    type Error = A::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(Seed(seed))
    }
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(Seed(seed))
    }
    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

/// An enum's variant name and content, each through [`ObjectsOnly`].
struct Variants<A>(A);

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Variants<A> {
    type Error = A::Error;
    type Variant = Content<A::Variant>;
    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self::Variant), A::Error> {
        let (value, variant) = self.0.variant_seed(Seed(seed))?;
        Ok((value, Content(variant)))
    }
}

/// A variant's content: a struct variant, like a struct, must be an object.
struct Content<A>(A);

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Content<A> {
    type Error = A::Error;
    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(Seed(seed))
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Guard::any(visitor))
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0.struct_variant(fields, Guard::object(visitor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        a: u8,
        b: u8,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Outer {
        inner: Inner,
        list: Vec<Inner>,
        pair: (u8, u8),
        maybe: Option<Inner>,
    }

    /// As a processor event: members beside a flattened, adjacently tagged body.
    #[derive(Debug, Deserialize, PartialEq)]
    struct Event {
        id: u8,
        #[serde(flatten)]
        body: Body,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(tag = "type", content = "data")]
    enum Body {
        #[serde(deserialize_with = "object")]
        One(Inner),
    }

    fn strict<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, String> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        T::deserialize(ObjectsOnly(&mut deserializer)).map_err(|e| e.to_string())
    }

    #[test]
    fn objects_parse_and_sequences_stay_sequences() {
        let text = r#"{"inner":{"a":1,"b":2},"list":[{"a":3,"b":4}],"pair":[5,6],"maybe":{"a":7,"b":8}}"#;
        let outer: Outer = strict(text).unwrap();
        assert_eq!(outer.inner, Inner { a: 1, b: 2 });
        assert_eq!(outer.list, vec![Inner { a: 3, b: 4 }]);
        assert_eq!(outer.pair, (5, 6));
        assert_eq!(outer.maybe, Some(Inner { a: 7, b: 8 }));
    }

    #[test]
    fn a_struct_written_as_an_array_is_refused_at_any_depth() {
        // serde alone accepts each of these.
        let cases = [
            r#"[{"a":1,"b":2},[],[5,6],null]"#,
            r#"{"inner":[1,2],"list":[],"pair":[5,6],"maybe":null}"#,
            r#"{"inner":{"a":1,"b":2},"list":[[3,4]],"pair":[5,6],"maybe":null}"#,
            r#"{"inner":{"a":1,"b":2},"list":[],"pair":[5,6],"maybe":[7,8]}"#,
        ];
        for text in cases {
            assert!(serde_json::from_str::<Outer>(text).is_ok(), "serde itself accepts {text}");
            let error = strict::<Outer>(text).unwrap_err();
            assert!(error.contains("expected a JSON object"), "{text}: {error}");
        }
    }

    #[test]
    fn buffered_members_opt_in_with_object() {
        let event: Event = strict(r#"{"id":1,"type":"One","data":{"a":1,"b":2}}"#).unwrap();
        assert_eq!(event.body, Body::One(Inner { a: 1, b: 2 }));
        let error = strict::<Event>(r#"{"id":1,"type":"One","data":[1,2]}"#).unwrap_err();
        assert!(error.contains("expected a JSON object"), "{error}");
    }
}
