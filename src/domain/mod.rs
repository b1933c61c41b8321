//! The city's domain metrics, as pure functions: China HJ 633 IAQI (2012 and 2026 tables)
//! and US EPA AQI with NowCast for PM2.5 (`aqi`), flood signals, underpass grades and rise
//! rates for water (`water`), availability and offline piles for charging (`charging`),
//! dust-load grades and hotspots (`dust`). Each constant cites its source (DOMAIN.md).

pub mod aqi;
pub mod charging;
pub mod dust;
pub mod enrich;
pub mod water;
