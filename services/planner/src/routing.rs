//! Which plant builds a SKU: a SKU rule, else a category rule, else the default plant.
//!
//! A category rule is an explicit category (`makeup`, a REES46 `category_id`), a list of
//! them per plant (`[category_ids]`), or a path prefix of dotted category codes
//! (`"electronics.*"` matches `electronics.smartphone` and `electronics.audio.headphone`); an
//! exact category wins over a prefix, and a longer prefix over a shorter one.

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
    /// Category, or category path prefix ending in `.*`, -> plant.
    #[serde(default)]
    pub categories: BTreeMap<String, String>,
    /// Plant -> the categories it builds (explicit id lists, e.g. REES46 `category_id`s).
    #[serde(default)]
    pub category_ids: BTreeMap<String, Vec<String>>,
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
        // Compiled in: a file that does not parse fails the tests below, never a user.
        toml::from_str(include_str!("../../../deploy/plants.toml"))
            .expect("deploy/plants.toml parses")
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
            .chain(self.category_ids.keys())
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
        if let Some(p) = category.and_then(|c| self.category_plant(c)) {
            return (p, true);
        }
        (&self.default_plant, false)
    }

    /// The plant of a category: an exact rule or id list, else the longest matching prefix.
    fn category_plant(&self, category: &str) -> Option<&str> {
        if let Some(p) = self.categories.get(category) {
            return Some(p);
        }
        if let Some((p, _)) = self
            .category_ids
            .iter()
            .find(|(_, ids)| ids.iter().any(|id| id == category))
        {
            return Some(p);
        }
        // Prefixes from the longest: `a.b.*` before `a.*`.
        let mut path = category;
        while let Some(dot) = path.rfind('.') {
            path = &path[..dot];
            if let Some(p) = self.categories.get(&format!("{path}.*")) {
                return Some(p);
            }
        }
        None
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

    #[test]
    fn category_paths_route_by_their_longest_prefix_and_ids_by_their_list() {
        let mut r = Routing::bundled();
        r.categories.insert("electronics.*".into(), "lyon".into());
        r.categories
            .insert("electronics.audio.*".into(), "porto".into());
        r.categories
            .insert("electronics.audio.radio".into(), "berlin".into());
        r.category_ids
            .insert("porto".into(), vec!["2053013552326770905".into()]);
        assert_eq!(r.route("x", Some("electronics.smartphone")), ("lyon", true));
        assert_eq!(
            r.route("x", Some("electronics.audio.headphone")),
            ("porto", true)
        );
        assert_eq!(
            r.route("x", Some("electronics.audio.radio")),
            ("berlin", true)
        );
        assert_eq!(
            r.route("x", Some("electronics")),
            ("berlin", false),
            "no prefix of itself"
        );
        assert_eq!(r.route("x", Some("electronicsx.tv")), ("berlin", false));
        assert_eq!(r.route("x", Some("2053013552326770905")), ("porto", true));
        assert!(r.check().is_ok());
        r.category_ids.insert("atlantis".into(), vec!["1".into()]);
        assert!(r.check().is_err(), "an id list names an undescribed plant");
    }

    #[test]
    fn the_bundled_routing_sends_a_multi_category_shop_to_several_plants() {
        let r = Routing::bundled();
        let plants: std::collections::BTreeSet<&str> = [
            "electronics.smartphone",
            "electronics.audio.headphone",
            "computers.notebook",
            "appliances.kitchen.refrigerators",
        ]
        .into_iter()
        .map(|c| r.route("x", Some(c)))
        .filter(|(_, routed)| *routed)
        .map(|(p, _)| p)
        .collect();
        assert!(plants.len() > 1, "{plants:?}");
        assert!(r.check().is_ok());
    }
}
