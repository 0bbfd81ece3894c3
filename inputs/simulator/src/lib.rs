//! fitstream's input side: synthetic customer behaviour and history-file replay.
//!
//! Everything here produces [`InputRecord`]s — click events, purchases and deliberately bad
//! bytes — in the order they would be sent to the input topics. There is no Kafka code in
//! this crate: producers (Kafka or the embedded channels) iterate over these records.
//!
//! Layout:
//! - [`record`]: [`InputRecord`] and [`InputTopic`], what every source yields.
//! - [`defects`]: [`Defect`], bytes the real decoder rejects, each with its dead-letter reason.
//! - [`catalogue`]: cosmetics categories, products, SKUs with options, routing to plants.
//! - [`persona`]: the latent customer types behind the simulated behaviour.
//! - [`simulator`]: [`SimConfig`] and the seedable [`Simulator`] iterator.
//! - [`rees46`]: replay of the REES46 cosmetics-shop CSV history.
//! - [`taobao`]: replay of the Alibaba/Taobao UserBehavior CSV history.
//! - [`jsonl`]: fitstream's own JSON-lines format, written and read.
//! - [`lines`]: the lines of a history file, bounded, and one CSV row per line.
//! - [`sort`]: event-time order with bounded memory (an external merge sort) for histories
//!   that are not sorted by time.
//! - [`error`]: [`ReplayError`], a bad line of a history file.
//!
//! ```
//! use fitstream_simulator::{InputRecord, SimConfig, Simulator, read_jsonl, write_jsonl};
//!
//! let cfg = SimConfig { customers: 20, seconds: 3_600, rate: 0.2, ..SimConfig::default() };
//! let records: Vec<InputRecord> = Simulator::new(cfg)?.collect();
//! let mut file = Vec::new();
//! write_jsonl(&records, &mut file)?;
//! let back: Vec<InputRecord> = read_jsonl(file.as_slice()).collect::<Result<_, _>>()?;
//! assert_eq!(back, records);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod catalogue;
pub mod defects;
pub mod error;
pub mod jsonl;
pub mod lines;
pub mod persona;
pub mod record;
pub mod rees46;
pub mod simulator;
pub mod sort;
pub mod taobao;

pub use catalogue::{Catalogue, CatalogueConfig};
pub use defects::Defect;
pub use error::ReplayError;
pub use jsonl::{read_jsonl, write_jsonl};
pub use persona::Persona;
pub use record::{InputRecord, InputTopic};
pub use rees46::read_rees46;
pub use simulator::{ConfigError, DelayDistribution, SimConfig, Simulator};
pub use sort::{SortConfig, SortStats, Sorted, sort_by_event_time};
pub use taobao::read_taobao;
