//! `fitstream schemas register|check`: the product's schemas in a Confluent-compatible
//! registry, each under its topic's subject (`<topic>-value`), with the compatibility level
//! the docs promise: BACKWARD for the topics fitstream reads and its own tables, FULL_TRANSITIVE
//! for the event streams other teams consume (conventions: "BACKWARD at least,
//! FULL_TRANSITIVE for output topics other teams read").

use anyhow::bail;
use fitstream_contracts::codec::value_subject;
use fitstream_contracts::registry::Registry;
use fitstream_contracts::topics::TopicRole;

use crate::config::FitstreamConfig;

/// The compatibility level a topic's subject gets.
pub fn level_of(role: TopicRole) -> &'static str {
    match role {
        TopicRole::Output => "FULL_TRANSITIVE",
        TopicRole::Input | TopicRole::Table | TopicRole::DeadLetter => "BACKWARD",
    }
}

/// Registers (or, with `check`, checks) every schema of the product's topics; prints one line
/// per subject. A check fails when a subject is missing, has another level, or would refuse
/// the code's schema.
pub async fn schemas(cfg: &FitstreamConfig, check: bool, plants: &[String]) -> anyhow::Result<()> {
    let registry = Registry::from_config(&cfg.registry);
    let Registry::Rest(rest) = &registry else {
        bail!("no schema registry: set registry.url (FITSTREAM__REGISTRY__URL)");
    };
    println!("schema registry {}", rest.url);
    let mut failed = Vec::new();
    for spec in cfg.topics.specs(plants) {
        let Some(kind) = spec.value else { continue };
        let subject = value_subject(&spec.name);
        let level = level_of(spec.role);
        if check {
            let compatible = registry.is_compatible(&subject, kind).await?;
            let found = registry.compatibility(&subject).await?;
            let verdict = match (compatible, found.as_deref()) {
                (None, _) => "not registered",
                (Some(false), _) => "INCOMPATIBLE with what is registered",
                (Some(true), Some(l)) if l == level => "ok",
                (Some(true), _) => "wrong compatibility level",
            };
            println!(
                "  {subject:<45} {kind:?}  level {} (expected {level})  {verdict}",
                found.as_deref().unwrap_or("-")
            );
            if verdict != "ok" {
                failed.push(subject);
            }
        } else {
            registry.set_compatibility(&subject, level).await?;
            let id = registry.register(&subject, kind).await?;
            println!("  {subject:<45} {kind:?}  id {id}  level {level}");
        }
    }
    if !failed.is_empty() {
        bail!("schemas check failed for {}", failed.join(", "));
    }
    Ok(())
}
