//! The topology's internal topics: repartition topics and one compacted changelog per stage.

use std::collections::BTreeMap;

use fitstream_contracts::topics::TopicSpec;

use crate::task::Topology;

/// Internal topics of a topology: repartition topics and one compacted changelog per stage.
pub fn internal_topics(
    topology: &Topology,
    partitions: i32,
    replication_factor: i32,
) -> Vec<TopicSpec> {
    use fitstream_contracts::topics::TopicRole;
    let mut specs = Vec::new();
    for stage in &topology.stages {
        // Append time, not event time: a replay of old history must not have its internal
        // records deleted by time-based retention (or refused as too far in the past/future).
        let mut configs = BTreeMap::new();
        configs.insert("cleanup.policy".to_owned(), "compact".to_owned());
        configs.insert(
            "message.timestamp.type".to_owned(),
            "LogAppendTime".to_owned(),
        );
        specs.push(TopicSpec {
            name: topology.changelog_topic(stage),
            partitions,
            replication_factor,
            configs,
            role: TopicRole::Table,
            value: None,
        });
        for r in &stage.repartitions {
            let mut configs = BTreeMap::new();
            configs.insert("cleanup.policy".to_owned(), "delete".to_owned());
            configs.insert("retention.ms".to_owned(), (24 * 3_600_000).to_string());
            configs.insert(
                "message.timestamp.type".to_owned(),
                "LogAppendTime".to_owned(),
            );
            specs.push(TopicSpec {
                name: r.clone(),
                partitions,
                replication_factor,
                configs,
                role: TopicRole::Output,
                value: None,
            });
        }
    }
    specs
}
