//! Several nodes on one PostgreSQL database behave as one engine: the
//! account's send limits hold across them.

#[path = "common/postgres.rs"]
mod pg;

use std::collections::HashMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use flowc::providers::postgres::PostgresStore;
use flowc::providers::{SlotRequest, Store};

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_750_000_000_000 + ms).unwrap()
}

fn request<'a>(sender: &'a str, recipient: &'a str, now: DateTime<Utc>) -> SlotRequest<'a> {
    SlotRequest {
        sender,
        recipient,
        now,
        sender_spacing: Duration::microseconds(12_500),
        recipient_interval: Duration::seconds(6),
    }
}

async fn nodes(n: usize) -> Option<Vec<PostgresStore>> {
    if pg::skipped() {
        return None;
    }
    let url = pg::fresh_database().await;
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(PostgresStore::connect(&url).await.unwrap());
    }
    Some(nodes)
}

#[tokio::test]
async fn slots_follow_both_limits_and_a_waiting_send_holds_up_no_one() {
    let Some(nodes) = nodes(1).await else { return };
    let store = &nodes[0];
    assert!(store.paces_sends());
    let slot = |recipient: &'static str| async move {
        store
            .reserve_send_slot(request("shop", recipient, at(0)))
            .await
            .unwrap()
            .unwrap()
    };
    assert_eq!(slot("a").await, at(0));
    // The second message to `a` waits the pair interval...
    assert_eq!(slot("a").await, at(6_000));
    // ...without holding up the sender's messages to others.
    assert_eq!(slot("b").await - at(0), Duration::microseconds(12_500));
    assert_eq!(slot("c").await - at(0), Duration::microseconds(25_000));
}

#[tokio::test]
async fn the_frontier_steps_over_slots_reserved_ahead() {
    let Some(nodes) = nodes(1).await else { return };
    let store = &nodes[0];
    let reserve = |recipient: String, now| async move {
        store
            .reserve_send_slot(request("shop", &recipient, now))
            .await
            .unwrap()
            .unwrap()
    };
    reserve("a".into(), at(0)).await;
    // `a` again: ahead, at 6 s.
    let ahead = reserve("a".into(), at(0)).await;
    assert_eq!(ahead, at(6_000));
    // 500 others from 5.99 s on take the frontier; none lands within one
    // spacing of the reserved slot.
    let mut slots = vec![ahead];
    for i in 0..500 {
        slots.push(reserve(format!("r{i}"), at(5_990)).await);
    }
    slots.sort();
    for pair in slots.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::microseconds(12_500),
            "{pair:?}"
        );
    }
}

#[tokio::test]
async fn three_nodes_reserving_at_once_keep_the_accounts_limits() {
    let Some(nodes) = nodes(3).await else { return };
    let t0 = at(0);
    // 3 nodes × 200 sends of one sender to 100 customers (each customer
    // twice per node), all asked for at the same moment.
    let mut tasks = Vec::new();
    for node in nodes {
        tasks.push(tokio::spawn(async move {
            let mut slots = Vec::new();
            for i in 0..200 {
                let recipient = format!("+4915{:07}", i % 100);
                let slot = node
                    .reserve_send_slot(request("shop", &recipient, t0))
                    .await
                    .unwrap()
                    .unwrap();
                slots.push((slot, recipient));
            }
            slots
        }));
    }
    let mut slots = Vec::new();
    for task in tasks {
        slots.extend(task.await.unwrap());
    }
    slots.sort();
    assert_eq!(slots.len(), 600);
    for pair in slots.windows(2) {
        assert!(
            pair[1].0 - pair[0].0 >= Duration::microseconds(12_500),
            "two sends of the sender closer than 1/80 s: {pair:?}"
        );
    }
    let mut last: HashMap<&str, DateTime<Utc>> = HashMap::new();
    for (slot, recipient) in &slots {
        if let Some(previous) = last.insert(recipient, *slot) {
            assert!(
                *slot - previous >= Duration::seconds(6),
                "{recipient} got two messages {} apart",
                *slot - previous
            );
        }
    }
    // Sends to 100 customers, 6 each: the last customer's sixth message is
    // 30 s after its first, and most slots are taken in the first second.
    let first_second = slots
        .iter()
        .filter(|(s, _)| *s < t0 + Duration::seconds(1))
        .count();
    assert_eq!(first_second, 80);
}
