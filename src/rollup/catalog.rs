//! How many sensors of each kind the registry places in each area, to count silent ones.

use std::collections::HashMap;

use super::message::AreaLevel;
use crate::model::Kind;
use crate::registry::Registry;

#[derive(Debug, Default, Clone)]
pub struct AreaCatalog {
    registered: HashMap<(Kind, AreaLevel, String), u32>,
}

impl AreaCatalog {
    pub fn from_registry(registry: &Registry) -> Self {
        let mut registered = HashMap::new();
        for info in registry.iter() {
            let Some(kind) = info.kind else { continue };
            for (level, key) in [(AreaLevel::Grid, &info.grid), (AreaLevel::Street, &info.street), (AreaLevel::District, &info.district)] {
                if !key.is_empty() {
                    *registered.entry((kind, level, key.clone())).or_default() += 1;
                }
            }
        }
        AreaCatalog { registered }
    }

    pub fn registered(&self, kind: Kind, level: AreaLevel, area: &str) -> Option<u32> {
        self.registered.get(&(kind, level, area.to_owned())).copied()
    }
}
