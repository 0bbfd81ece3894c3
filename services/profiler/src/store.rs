//! Every customer of one task: the compact states, and which of them await emission or a
//! changelog write.
//!
//! Layout, for memory: a hash table (`hashbrown::HashTable`, SipHash under a random key, as a
//! std `HashMap`: ids are written by strangers) of `Box<Customer>`, a customer being its id
//! and its 120-byte state. The table holds 8-byte entries, so its unused slots (a hash table
//! is 44% to 87% full) cost 9 bytes each; the customer and its id are one exact-size
//! allocation each. [`ProfileStore::heap_bytes`] estimates what that asks of the allocator.
//! (A `HashMap<Box<str>, Box<CustomerState>>`, until 2026-12-08, held 24-byte entries:
//! `state_memory` printed 185 bytes per customer at 1M customers with it, 167 without.)
//!
//! Customers are never deleted: a profile is kept for as long as the service runs (the
//! profiles topic is a compacted table; a retention by inactivity would be a tombstone here
//! and on that topic, not implemented).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use fitstream_contracts::{ClickEvent, PurchaseEvent};
use fitstream_runtime::state::{Changes, StateError, Store, StoreKey, decode};

use crate::state::{CategoryInterner, CustomerState, StoredCustomer};

/// A customer of the store: its id and state, one allocation.
#[derive(Debug)]
struct Customer {
    id: Box<str>,
    state: CustomerState,
}

/// The customers of one task.
#[derive(Debug, Default)]
pub struct ProfileStore {
    customers: hashbrown::HashTable<Box<Customer>>,
    /// The table's hasher (a random key per store).
    hasher: RandomState,
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
        let hasher = &self.hasher;
        let entry = self.customers.entry(
            hasher.hash_one(customer),
            |c| &*c.id == customer,
            |c| hasher.hash_one(&*c.id),
        );
        &mut entry
            .or_insert_with(|| {
                Box::new(Customer {
                    id: customer.into(),
                    state: CustomerState::default(),
                })
            })
            .into_mut()
            .state
    }

    fn find_mut(&mut self, customer: &str) -> Option<&mut CustomerState> {
        let hash = self.hasher.hash_one(customer);
        self.customers
            .find_mut(hash, |c| &*c.id == customer)
            .map(|c| &mut c.state)
    }

    /// Flags a customer as awaiting emission and a changelog write.
    pub fn touch(&mut self, customer: &str) {
        let Some(state) = self.find_mut(customer) else {
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
        if let Some(state) = self.find_mut(customer)
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
        self.customers
            .find(self.hasher.hash_one(customer), |c| &*c.id == customer)
            .map(|c| &c.state)
    }

    /// A customer's state, to change (call [`ProfileStore::mark_changed`] after).
    pub fn get_mut(&mut self, customer: &str) -> Option<&mut CustomerState> {
        self.find_mut(customer)
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
        ids.retain(|id| self.find_mut(id).is_some_and(|s| !s.set_pending(false)));
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
        let mut ids: Vec<Box<str>> = self.customers.iter().map(|c| c.id.clone()).collect();
        ids.sort_unstable();
        ids
    }

    /// Changelog forms of the customers changed since the last call (flags cleared).
    pub fn take_changed(&mut self) -> Vec<(Box<str>, StoredCustomer)> {
        let ids = std::mem::take(&mut self.changed);
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let hash = self.hasher.hash_one(&*id);
            if let Some(c) = self.customers.find_mut(hash, |c| c.id == id) {
                let state = &mut c.state;
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
        *self.entry(customer) = state;
        if pending && !was_pending {
            self.pending.push(customer.into());
        }
        Ok(())
    }

    /// Removes a customer (a tombstone in the changelog).
    pub fn remove(&mut self, customer: &str) {
        let hash = self.hasher.hash_one(customer);
        if let Ok(entry) = self.customers.find_entry(hash, |c| &*c.id == customer) {
            entry.remove();
        }
    }

    /// Customers.
    pub fn len(&self) -> usize {
        self.customers.len()
    }

    /// Whether there is no customer.
    pub fn is_empty(&self) -> bool {
        self.customers.is_empty()
    }

    /// Estimated heap bytes requested for the customers: the hash table (buckets of 8 bytes
    /// plus a control byte each), every customer (id pointer and state) and its id's bytes.
    /// Excludes the allocator's own per-allocation overhead (see
    /// [`ProfileStore::allocator_bytes`]) and the interner.
    pub fn heap_bytes(&self) -> usize {
        let entry = size_of::<Box<Customer>>() + 1;
        let keys: usize = self.customers.iter().map(|c| c.id.len()).sum();
        table_buckets(self.customers.capacity()) * entry
            + keys
            + self.customers.len() * size_of::<Customer>()
    }

    /// Like [`ProfileStore::heap_bytes`] with a glibc-like allocator's chunk sizes (8-byte
    /// header, 16-byte granularity, 32-byte minimum) for the key and state allocations.
    pub fn allocator_bytes(&self) -> usize {
        let chunk = |n: usize| (n + 8).div_ceil(16).max(2) * 16;
        let entry = size_of::<Box<Customer>>() + 1;
        let keys: usize = self.customers.iter().map(|c| chunk(c.id.len())).sum();
        chunk(table_buckets(self.customers.capacity()) * entry)
            + keys
            + self.customers.len() * chunk(size_of::<Customer>())
    }

    /// Approximate heap bytes of the category names.
    pub fn interner_bytes(&self) -> usize {
        self.interner.heap_bytes()
    }
}

/// Buckets of a hashbrown table (as a std `HashMap`) of this capacity: a power of two, 7/8 usable.
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
        let mut t = hashbrown::HashTable::new();
        for i in 0..2_000u64 {
            t.insert_unique(i, i, |x| *x);
        }
        assert_eq!(table_buckets(t.capacity()), 4_096);
    }

    #[test]
    fn customers_are_found_replaced_and_removed_by_id() {
        let mut s = ProfileStore::new();
        for i in 0..1_000 {
            s.click(&view(&format!("c{i}"), i));
        }
        assert_eq!(s.len(), 1_000);
        let stored = s.take_changed();
        let (id, v) = stored
            .iter()
            .find(|(id, _)| &**id == "c7")
            .cloned()
            .expect("c7");
        s.click(&view("c7", 2_000));
        s.restore(&id, v).expect("valid");
        assert_eq!(s.len(), 1_000, "replaced, not added");
        s.remove("c7");
        s.remove("nobody");
        assert_eq!(s.len(), 999);
        assert!(s.get("c7").is_none() && s.get("c8").is_some());
        assert_eq!(s.ids().len(), 999);
    }
}
