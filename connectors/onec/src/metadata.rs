//! `$metadata` (EDMX, OData v3) read as a stream: the entity sets and the properties of
//! their types (with table parts' row types), enough to check a mapping before any data
//! is read. Real configurations publish 10+ MB of it; only names and types are kept.

use std::collections::HashMap;
use std::io::BufRead;

use quick_xml::events::Event;

/// One entity or complex type: its properties in order, name → EDM type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Type {
    pub properties: Vec<(String, String)>,
}

impl Type {
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
    }
}

/// What `$metadata` publishes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    /// Entity set → its type's name (without the namespace).
    pub sets: HashMap<String, String>,
    /// Entity and complex types by name (without the namespace).
    pub types: HashMap<String, Type>,
    pub functions: usize,
}

/// `StandardODATA.X` → `X`; `Collection(StandardODATA.X)` → `X`.
fn bare(name: &str) -> &str {
    let name = name
        .strip_prefix("Collection(")
        .and_then(|n| n.strip_suffix(')'))
        .unwrap_or(name);
    name.rsplit('.').next().unwrap_or(name)
}

/// Edit distance, for the nearest names in an error.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut row = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            row.push((prev[j] + cost).min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()]
}

/// The (up to three) names nearest to `wanted`.
pub fn nearest<'a>(wanted: &str, names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut scored: Vec<(usize, &str)> = names.map(|n| (distance(wanted, n), n)).collect();
    scored.sort();
    scored
        .into_iter()
        .take(3)
        .map(|(_, n)| n.to_string())
        .collect()
}

impl Metadata {
    /// Reads EDMX from `input`, streaming.
    pub fn parse(input: impl BufRead) -> Result<Metadata, String> {
        let mut reader = quick_xml::Reader::from_reader(input);
        let mut buf = Vec::new();
        let mut out = Metadata::default();
        let mut current: Option<(String, Type)> = None;
        loop {
            let event = reader
                .read_event_into(&mut buf)
                .map_err(|e| format!("at byte {}: {e}", reader.buffer_position()))?;
            match &event {
                Event::Start(e) | Event::Empty(e) => {
                    let attr = |key: &str| -> Option<String> {
                        e.attributes()
                            .flatten()
                            .find(|a| a.key.local_name().into_inner() == key)
                            .and_then(|a| {
                                a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                    .ok()
                                    .map(|v| v.into_owned())
                            })
                    };
                    match e.local_name().into_inner() {
                        "EntityType" | "ComplexType" => {
                            let name = attr("Name").unwrap_or_default();
                            if matches!(event, Event::Empty(_)) {
                                out.types.insert(name, Type::default());
                            } else {
                                current = Some((name, Type::default()));
                            }
                        }
                        "Property" | "NavigationProperty" => {
                            if let Some((_, t)) = &mut current {
                                let name = attr("Name").unwrap_or_default();
                                let ty = attr("Type").unwrap_or_else(|| "Navigation".into());
                                t.properties.push((name, ty));
                            }
                        }
                        "EntitySet" => {
                            if let (Some(name), Some(ty)) = (attr("Name"), attr("EntityType")) {
                                out.sets.insert(name, bare(&ty).to_string());
                            }
                        }
                        "FunctionImport" => out.functions += 1,
                        _ => {}
                    }
                }
                Event::End(e) => {
                    if matches!(e.local_name().into_inner(), "EntityType" | "ComplexType")
                        && let Some((name, t)) = current.take()
                    {
                        out.types.insert(name, t);
                    }
                }
                Event::Eof => break,
                _ => {}
            }
            buf.clear();
        }
        if out.sets.is_empty() {
            return Err("no entity set: is this `$metadata` of a standard OData interface with published objects?".into());
        }
        Ok(out)
    }

    /// The type of an entity set, or the nearest set names.
    pub fn set(&self, set: &str) -> Result<&Type, String> {
        let ty = self.sets.get(set).ok_or_else(|| {
            format!(
                "`{set}` is not published (nearest: {})",
                nearest(set, self.sets.keys().map(String::as_str)).join(", ")
            )
        })?;
        self.types
            .get(ty)
            .ok_or_else(|| format!("`{set}`: its type `{ty}` is not described"))
    }

    /// Checks a field of a set: `Field`, or `TablePart/Field` of a table part's row type.
    /// Returns the field's EDM type.
    pub fn field(&self, set: &str, field: &str) -> Result<String, String> {
        let t = self.set(set)?;
        let missing = |t: &Type, f: &str, at: &str| {
            format!(
                "`{at}` has no field `{f}` (nearest: {})",
                nearest(f, t.properties.iter().map(|(n, _)| n.as_str())).join(", ")
            )
        };
        match field.split_once('/') {
            None => t
                .property(field)
                .map(str::to_string)
                .ok_or_else(|| missing(t, field, set)),
            Some((part, inner)) => {
                let ty = t.property(part).ok_or_else(|| missing(t, part, set))?;
                let row = self
                    .types
                    .get(bare(ty))
                    .ok_or_else(|| format!("`{set}/{part}` is not a table part"))?;
                row.property(inner)
                    .map(str::to_string)
                    .ok_or_else(|| missing(row, inner, &format!("{set}/{part}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EDMX: &str = r#"<edmx:Edmx xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx" Version="1.0">
 <edmx:DataServices xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata" m:DataServiceVersion="3.0">
  <Schema xmlns="http://schemas.microsoft.com/ado/2009/11/edm" Namespace="StandardODATA">
   <EntityType Name="Document_РеализацияТоваровУслуг" OpenType="true">
    <Key><PropertyRef Name="Ref_Key"/></Key>
    <Property Name="Ref_Key" Type="Edm.Guid" Nullable="false"/>
    <Property Name="Date" Type="Edm.DateTime" Nullable="true"/>
    <Property Name="Контрагент_Key" Type="Edm.Guid" Nullable="true"/>
    <Property Name="СуммаДокумента" Type="Edm.Double" Nullable="true"/>
    <Property Name="Товары" Type="Collection(StandardODATA.Document_РеализацияТоваровУслуг_Товары_RowType)" Nullable="true"/>
   </EntityType>
   <ComplexType Name="Document_РеализацияТоваровУслуг_Товары_RowType">
    <Property Name="LineNumber" Type="Edm.Int64"/><Property Name="Количество" Type="Edm.Double"/>
   </ComplexType>
   <EntityContainer Name="EnterpriseV8" m:IsDefaultEntityContainer="true">
    <EntitySet Name="Document_РеализацияТоваровУслуг" EntityType="StandardODATA.Document_РеализацияТоваровУслуг"/>
    <FunctionImport Name="Turnovers" IsBindable="true"/>
   </EntityContainer></Schema></edmx:DataServices></edmx:Edmx>"#;

    #[test]
    fn sets_fields_and_table_parts() {
        let m = Metadata::parse(EDMX.as_bytes()).unwrap();
        assert_eq!(m.functions, 1);
        let set = "Document_РеализацияТоваровУслуг";
        assert_eq!(m.field(set, "СуммаДокумента").unwrap(), "Edm.Double");
        assert_eq!(m.field(set, "Товары/Количество").unwrap(), "Edm.Double");
        assert_eq!(
            m.field(set, "СуммаДокументов").unwrap_err(),
            "`Document_РеализацияТоваровУслуг` has no field `СуммаДокументов` (nearest: СуммаДокумента, Контрагент_Key, Товары)"
        );
        assert!(
            m.field(set, "Товары/Колво")
                .unwrap_err()
                .contains("(nearest: Количество")
        );
        assert!(m.set("Document_Реализация").unwrap_err().starts_with(
            "`Document_Реализация` is not published (nearest: Document_РеализацияТоваровУслуг"
        ));
        assert!(Metadata::parse("<html><body>404</body></html>".as_bytes()).is_err());
    }
}
