//! Every customer of one task: the compact states, and which of them await emission or a
//! changelog write.
//!
//! Layout, for memory: `HashMap<Box<str>, Box<CustomerState>>`. The table holds 24-byte
//! entries (key pointer and length, state pointer), so its unused slots (a hash table is 44% to
//! 87% full) cost little; the key and the 120-byte state are one exact-size allocation each.
//! [`ProfileStore::heap_bytes`] estimates what that asks of the allocator.
//!
//! Customers are never deleted: a profile is kept for as long as the service runs (the
//! profiles topic is a compacted table; a retention by inactivity would be a tombstone here
//! and on that topic, not implemented).

use std::collections::HashMap;

use fitstream_contracts::{ClickEvent, PurchaseEvent};
use fitstream_runtime::state::{Changes, StateError, Store, StoreKey, decode};

use crate::state::{CategoryInterner, CustomerState, StoredCustomer};

/// The customers of one task.
#[derive(Debug, Default)]
pub struct ProfileStore {
    customers: HashMap<Box<str>, Box<CustomerState>>,
    interner: CategoryInterner,
    /// Customers whose pending flag went up since the last emission (may hold a customer
    /// that was removed by a restore tombstone: skipped).
    pending: Vec<Box<str>>,
    /// Customers whose changed flag went up since the last checkpoint.
    changed: Vec<Box<str>>,
    /// Whether [`ProfileStore::take_checkpointed`] is used (the lookup API).
    track_checkpointed: bool,
    /// Customers written by checkpoints since the last [`ProfileStore::take_checkpointed`].
    checkpointed: Vec<Box<str>>,
}

impl ProfileStore {
    /// An empty store.
    pub fn new() -> ProfileStore {
        ProfileStore::default()
    }

    fn entry(&mut self, customer: &str) -> &mut CustomerState {
        if !self.customers.contains_key(customer) {
            self.customers.insert(customer.into(), Box::default());
        }
        // Inserted just above when missing.
        self.customers
            .get_mut(customer)
            .map(Box::as_mut)
            .unwrap_or_else(|| unreachable!("customer inserted above"))
    }

    /// Flags a customer as awaiting emission and a changelog write.
    pub fn touch(&mut self, customer: &str) {
        let Some(state) = self.customers.get_mut(customer) else {
            return;
        };
        let newly_pending = state.set_pending(true);
        let newly_changed = state.mark_changed();
        if newly_pending {
            self.pending.push(customer.into());
        }
        if newly_changed {
            self.changed.push(customer.into());
        }
    }

    /// Flags a customer as awaiting a changelog write only.
    pub fn mark_changed(&mut self, customer: &str) {
        if let Some(state) = self.customers.get_mut(customer)
            && state.mark_changed()
        {
            self.changed.push(customer.into());
        }
    }

    /// Adds a click event to its customer.
    pub fn click(&mut self, c: &ClickEvent) {
        let mut interner = std::mem::take(&mut self.interner);
        self.entry(&c.customer_id).click(c, &mut interner);
        self.interner = interner;
        self.touch(&c.customer_id);
    }

    /// Adds an order to its customer.
    pub fn purchase(&mut self, p: &PurchaseEvent) {
        self.entry(&p.customer_id).purchase(p);
        self.touch(&p.customer_id);
    }

    /// A customer's state.
    pub fn get(&self, customer: &str) -> Option<&CustomerState> {
        self.customers.get(customer).map(Box::as_ref)
    }

    /// A customer's state, to change (call [`ProfileStore::mark_changed`] after).
    pub fn get_mut(&mut self, customer: &str) -> Option<&mut CustomerState> {
        self.customers.get_mut(customer).map(Box::as_mut)
    }

    /// The category names.
    pub fn interner(&self) -> &CategoryInterner {
        &self.interner
    }

    /// Customers awaiting emission, sorted (so that output order never depends on a hash
    /// seed or on the order of a restore), and their pending flags cleared. Each becomes
    /// changed: its flag is part of the changelog form.
    pub fn take_pending(&mut self) -> Vec<Box<str>> {
        let mut ids = std::mem::take(&mut self.pending);
        ids.sort_unstable();
        ids.dedup();
        ids.retain(|id| {
            self.customers
                .get_mut(id)
                .is_some_and(|s| !s.set_pending(false))
        });
        for id in &ids {
            self.mark_changed(id);
        }
        ids
    }

    /// Keeps the ids of the customers each checkpoint writes, for
    /// [`ProfileStore::take_checkpointed`].
    pub fn track_checkpointed(&mut self) {
        self.track_checkpointed = true;
    }

    /// The customers written by checkpoints since the last call (tracked only after
    /// [`ProfileStore::track_checkpointed`]).
    pub fn take_checkpointed(&mut self) -> Vec<Box<str>> {
        std::mem::take(&mut self.checkpointed)
    }

    /// Every customer id, sorted.
    pub fn ids(&self) -> Vec<Box<str>> {
        let mut ids: Vec<Box<str>> = self.customers.keys().cloned().collect();
        ids.sort_unstable();
        ids
    }

    /// Changelog forms of the customers changed since the last call (flags cleared).
    pub fn take_changed(&mut self) -> Vec<(Box<str>, StoredCustomer)> {
        let ids = std::mem::take(&mut self.changed);
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(state) = self.customers.get_mut(&id) {
                state.clear_changed();
                let stored = state.to_stored(&self.interner);
                if self.track_checkpointed {
                    self.checkpointed.push(id.clone());
                }
                out.push((id, stored));
            }
        }
        out
    }

    /// Restores one customer from its changelog form (replacing any earlier version).
    pub fn restore(&mut self, customer: &str, stored: StoredCustomer) -> Result<(), String> {
        let state = CustomerState::from_stored(stored, &mut self.interner)?;
        let pending = state.is_pending();
        let was_pending = self.get(customer).is_some_and(CustomerState::is_pending);
        self.customers.insert(customer.into(), Box::new(state));
        if pending && !was_pending {
            self.pending.push(customer.into());
        }
        Ok(())
    }

    /// Removes a customer (a tombstone in the changelog).
    pub fn remove(&mut self, customer: &str) {
        self.customers.remove(customer);
    }

    /// Customers.
    pub fn len(&self) -> usize {
        self.customers.len()
    }

    /// Whether there is no customer.
    pub fn is_empty(&self) -> bool {
        self.customers.is_empty()
    }

    /// Estimated heap bytes requested for the customers: the hash table (buckets of 24 bytes
    /// plus a control byte each), every key and every state. Excludes the allocator's own
    /// per-allocation overhead (see [`ProfileStore::allocator_bytes`]) and the interner.
    pub fn heap_bytes(&self) -> usize {
        let entry = size_of::<(Box<str>, Box<CustomerState>)>() + 1;
        let keys: usize = self.customers.keys().map(|k| k.len()).sum();
        table_buckets(self.customers.capacity()) * entry
            + keys
            + self.customers.len() * size_of::<CustomerState>()
    }

    /// Like [`ProfileStore::heap_bytes`] with a glibc-like allocator's chunk sizes (8-byte
    /// header, 16-byte granularity, 32-byte minimum) for the key and state allocations.
    pub fn allocator_bytes(&self) -> usize {
        let chunk = |n: usize| (n + 8).div_ceil(16).max(2) * 16;
        let entry = size_of::<(Box<str>, Box<CustomerState>)>() + 1;
        let keys: usize = self.customers.keys().map(|k| chunk(k.len())).sum();
        chunk(table_buckets(self.customers.capacity()) * entry)
            + keys
            + self.customers.len() * chunk(size_of::<CustomerState>())
    }

    /// Approximate heap bytes of the category names.
    pub fn interner_bytes(&self) -> usize {
        self.interner.heap_bytes()
    }
}

/// Buckets of a std `HashMap` (hashbrown) of this capacity: a power of two, 7/8 usable.
fn table_buckets(capacity: usize) -> usize {
    if capacity == 0 {
        0
    } else if capacity < 8 {
        (capacity + 1).next_power_of_two()
    } else {
        (capacity * 8 / 7).next_power_of_two()
    }
}

/// The runtime's store of the customers: one entry per customer changed since the previous
/// checkpoint, key the customer id, value its [`StoredCustomer`].
impl Store for ProfileStore {
    fn checkpoint(&mut self, out: &mut Changes<'_>) -> Result<(), StateError> {
        for (id, stored) in self.take_changed() {
            out.put(id.as_bytes(), &stored)?;
        }
        Ok(())
    }

    fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StateError> {
        let customer = Box::<str>::from_bytes(key)?;
        match value {
            Some(v) => {
                ProfileStore::restore(self, &customer, decode(v)?).map_err(StateError::Decode)
            }
            None => {
                self.remove(&customer);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use fitstream_contracts::{ClickEventType, EventTime};

    use super::*;

    fn view(customer: &str, t: i64) -> ClickEvent {
        ClickEvent {
            event_id: format!("{customer}-{t}"),
            customer_id: customer.into(),
            session_id: "s".into(),
            event_type: ClickEventType::ProductView,
            product_id: None,
            sku: None,
            options: Default::default(),
            category: Some("skincare".into()),
            price: None,
            query: None,
            channel: "web".into(),
            region: "eu".into(),
            event_time: EventTime(t),
        }
    }

    #[test]
    fn pending_customers_come_out_once_and_sorted() {
        let mut s = ProfileStore::new();
        s.click(&view("b", 1));
        s.click(&view("a", 2));
        s.click(&view("b", 3));
        let ids = s.take_pending();
        assert_eq!(ids, vec!["a".into(), "b".into()] as Vec<Box<str>>);
        assert!(s.take_pending().is_empty());
        let changed = s.take_changed();
        assert_eq!(changed.len(), 2);
        assert!(s.take_changed().is_empty());
    }

    #[test]
    fn restore_rebuilds_the_pending_list() {
        let mut s = ProfileStore::new();
        s.click(&view("a", 1));
        let entries = s.take_changed();
        let mut r = ProfileStore::new();
        for (id, stored) in entries {
            r.restore(&id, stored).expect("valid");
        }
        assert_eq!(r.take_pending(), vec!["a".into()] as Vec<Box<str>>);
        let a = r.get("a").expect("restored");
        assert_eq!(
            a.profile("a", r.interner()),
            s.get("a").expect("present").profile("a", s.interner())
        );
    }

    #[test]
    fn table_buckets_follow_hashbrown() {
        let mut m: HashMap<u32, u32> = HashMap::new();
        for i in 0..2_000 {
            m.insert(i, i);
        }
        assert_eq!(table_buckets(m.capacity()), 4_096);
    }
}
