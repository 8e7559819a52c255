//! Which columns of the input files a source reads, and the schema it writes: the text, id
//! and label columns (named by the config or found by convention), provenance columns of an
//! earlier retort output, and the columns carried through.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::ParquetSourceConfig;
use crate::batch::{col, field_names};
use crate::error::{Error, Result};

/// Where each output column comes from.
#[derive(Debug, Clone)]
pub(super) struct Columns {
    pub(super) text: String,
    pub(super) id: Option<String>,
    pub(super) label: Option<String>,
    pub(super) passthrough: Vec<String>,
    /// The files already carry `retort` provenance columns (the output of an earlier run).
    pub(super) carry_provenance: bool,
}

/// Whether a column of type `t` holds strings: plain, large, view, or dictionary-encoded
/// (a pandas categorical), all of which are read as text.
fn is_string(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, values) => is_string(values),
        _ => false,
    }
}

pub(super) fn to_utf8(a: &ArrayRef, name: &str, file: &str) -> Result<ArrayRef> {
    if a.data_type() == &DataType::Utf8 {
        return Ok(a.clone());
    }
    arrow::compute::cast(a, &DataType::Utf8).map_err(|e| {
        Error::user(format!(
            "column `{name}` of `{file}` cannot be read as text"
        ))
        .with_source(e)
    })
}

impl Columns {
    pub(super) fn read_list(&self) -> Vec<&str> {
        let mut v: Vec<&str> = vec![&self.text];
        v.extend(self.id.as_deref());
        v.extend(self.label.as_deref());
        if self.carry_provenance {
            v.extend(col::PROVENANCE[1..].iter().copied());
        }
        v.extend(self.passthrough.iter().map(String::as_str));
        v
    }
}

pub(super) fn resolve_columns(
    cfg: &ParquetSourceConfig,
    schema: &Schema,
    file: &str,
) -> Result<Columns> {
    let has = |n: &str| schema.index_of(n).is_ok();
    let missing = |what: &str, n: &str, key: &str| {
        Error::user(format!(
            "`{file}` has no {what} column `{n}`; its columns are: {}",
            field_names(schema)
        ))
        .with_hint(format!("set `{key}` to the column that holds the {what}"))
    };
    if !has(&cfg.text_column) {
        return Err(missing("text", &cfg.text_column, "text_column"));
    }
    let text_type = schema
        .field_with_name(&cfg.text_column)?
        .data_type()
        .clone();
    if !is_string(&text_type) {
        return Err(Error::user(format!(
            "column `{}` of `{file}` has type {text_type}; the text column must hold strings",
            cfg.text_column
        ))
        .with_hint("set `text_column` to a string column"));
    }
    let carry = col::PROVENANCE.iter().all(|c| has(c));
    let id = match &cfg.id_column {
        Some(n) if !has(n) => return Err(missing("id", n, "id_column")),
        Some(n) => Some(n.clone()),
        None if has(col::ID) => Some(col::ID.to_string()),
        None => None,
    };
    if let Some(idc) = &id {
        let t = schema.field_with_name(idc)?.data_type();
        if !(is_string(t) || t.is_integer()) {
            return Err(Error::user(format!(
                "column `{idc}` of `{file}` has type {t}; ids must be strings or integers"
            ))
            .with_hint(
                "set `id_column` to another column, or remove the id column to derive ids",
            ));
        }
    }
    let label = match &cfg.label_column {
        Some(n) if !has(n) => return Err(missing("label", n, "label_column")),
        Some(n) => Some(n.clone()),
        None if has(col::LABEL) => Some(col::LABEL.to_string()),
        None => None,
    };
    let mut taken: Vec<&str> = vec![cfg.text_column.as_str()];
    taken.extend(id.as_deref());
    taken.extend(label.as_deref());
    if carry {
        taken.extend(col::PROVENANCE.iter().copied());
    }
    let passthrough: Vec<String> = match &cfg.columns {
        Some(list) => {
            for n in list {
                if !has(n) {
                    return Err(Error::user(format!(
                        "`{file}` has no column `{n}` (listed in `columns`); its columns are: {}",
                        field_names(schema)
                    )));
                }
            }
            list.iter()
                .filter(|n| !taken.contains(&n.as_str()))
                .cloned()
                .collect()
        }
        None => schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| !taken.contains(&n.as_str()))
            .collect(),
    };
    let reserved: Vec<&str> = col::PROVENANCE
        .iter()
        .copied()
        .chain([col::TEXT, col::LABEL])
        .collect();
    for n in &passthrough {
        if reserved.contains(&n.as_str()) {
            return Err(Error::user(format!(
                "column `{n}` of `{file}` has the name of a column retort writes"
            ))
            .with_hint("leave it out with `columns = [...]`, or rename it"));
        }
    }
    Ok(Columns {
        text: cfg.text_column.clone(),
        id,
        label,
        passthrough,
        carry_provenance: carry,
    })
}

pub(super) fn output_schema(c: &Columns, schema: &Schema, _file: &str) -> Result<SchemaRef> {
    let mut fields = vec![
        Field::new(col::ID, DataType::Utf8, true),
        Field::new(col::PARENT_ID, DataType::Utf8, true),
        Field::new(col::OP, DataType::Utf8, true),
        Field::new(col::OP_PARAMS, DataType::Utf8, true),
        Field::new(col::SEED, DataType::UInt64, true),
        Field::new(col::TEXT, DataType::Utf8, true),
    ];
    if let Some(l) = &c.label {
        let f = schema.field_with_name(l)?;
        fields.push(Field::new(col::LABEL, f.data_type().clone(), true));
    }
    for n in &c.passthrough {
        let f = schema.field_with_name(n)?;
        fields.push(Field::new(n, f.data_type().clone(), true));
    }
    let mut metadata = schema.metadata().clone();
    metadata.remove("ARROW:schema");
    Ok(Arc::new(Schema::new_with_metadata(fields, metadata)))
}
