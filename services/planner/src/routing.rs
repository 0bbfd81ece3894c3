//! Which plant builds a SKU: a SKU rule, else a category rule, else the default plant.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A plant's equipment and lead time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plant {
    /// Area within the plant.
    #[serde(default)]
    pub area: String,
    /// Production line.
    #[serde(default)]
    pub line: String,
    /// Hours from window end to the latest end of its build orders.
    #[serde(default = "default_lead")]
    pub lead_time_hours: i64,
}

fn default_lead() -> i64 {
    24
}

/// The routing table (`deploy/plants.toml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    /// Where unrouted records go.
    pub default_plant: String,
    /// Category -> plant.
    #[serde(default)]
    pub categories: BTreeMap<String, String>,
    /// SKU -> plant (wins over categories).
    #[serde(default)]
    pub skus: BTreeMap<String, String>,
    /// Plants.
    #[serde(default)]
    pub plants: BTreeMap<String, Plant>,
}

impl Default for Routing {
    fn default() -> Self {
        Routing::bundled()
    }
}

/// A routing file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("routing: {0}")]
pub struct RoutingError(String);

impl Routing {
    /// The routing shipped in `deploy/plants.toml`.
    pub fn bundled() -> Routing {
        toml::from_str(include_str!("../../../deploy/plants.toml")).unwrap_or_else(|_| Routing {
            default_plant: "default".into(),
            categories: BTreeMap::new(),
            skus: BTreeMap::new(),
            plants: BTreeMap::new(),
        })
    }

    /// Reads a routing file.
    pub fn load(path: &Path) -> Result<Routing, RoutingError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RoutingError(format!("{}: {e}", path.display())))?;
        let r: Routing = toml::from_str(&text).map_err(|e| RoutingError(e.to_string()))?;
        r.check()?;
        Ok(r)
    }

    fn check(&self) -> Result<(), RoutingError> {
        for plant in self
            .categories
            .values()
            .chain(self.skus.values())
            .chain([&self.default_plant])
        {
            if !self.plants.contains_key(plant) {
                return Err(RoutingError(format!(
                    "plant `{plant}` is routed to but not described"
                )));
            }
        }
        Ok(())
    }

    /// The plant of a SKU in a category, and whether a rule matched.
    pub fn route(&self, sku: &str, category: Option<&str>) -> (&str, bool) {
        if let Some(p) = self.skus.get(sku) {
            return (p, true);
        }
        if let Some(p) = category.and_then(|c| self.categories.get(c)) {
            return (p, true);
        }
        (&self.default_plant, false)
    }

    /// Every plant id.
    pub fn plant_ids(&self) -> Vec<String> {
        self.plants.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sku_beats_category_beats_default() {
        let mut r = Routing::bundled();
        assert_eq!(r.route("x", Some("makeup")), ("lyon", true));
        assert_eq!(r.route("x", Some("unknown")), ("berlin", false));
        r.skus.insert("x".into(), "porto".into());
        assert_eq!(r.route("x", Some("makeup")), ("porto", true));
        assert!(r.check().is_ok());
        r.skus.insert("y".into(), "atlantis".into());
        assert!(r.check().is_err());
    }
}
