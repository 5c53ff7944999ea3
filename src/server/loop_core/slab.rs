//! A vector of slots with a free list: the loop's connection table (O(1) insert and remove,
//! stable indices that become epoll tokens).

/// A vector of slots with a free list: O(1) insert and remove, stable indices.
pub(super) struct Slab<T> {
    pub(super) slots: Vec<Option<T>>,
    free: Vec<usize>,
}

impl<T> Slab<T> {
    pub(super) fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    /// The slot the next insert will use.
    pub(super) fn vacant(&mut self) -> usize {
        if let Some(&s) = self.free.last() {
            s
        } else {
            self.slots.push(None);
            self.free.push(self.slots.len() - 1);
            self.slots.len() - 1
        }
    }

    pub(super) fn insert(&mut self, v: T) -> usize {
        let s = self.vacant();
        self.free.pop();
        self.slots[s] = Some(v);
        s
    }

    pub(super) fn remove(&mut self, s: usize) -> Option<T> {
        let v = self.slots.get_mut(s)?.take()?;
        self.free.push(s);
        Some(v)
    }

    #[inline]
    pub(super) fn get_mut(&mut self, s: usize) -> Option<&mut T> {
        self.slots.get_mut(s)?.as_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slab_reuses_freed_slots() {
        let mut s: Slab<u32> = Slab::new();
        let a = s.insert(1);
        let b = s.insert(2);
        assert_ne!(a, b);
        assert_eq!(s.remove(a), Some(1));
        assert_eq!(s.remove(a), None);
        assert_eq!(s.vacant(), a);
        assert_eq!(s.insert(3), a);
        assert_eq!(s.get_mut(b).copied(), Some(2));
        assert_eq!(s.slots.len(), 2);
    }
}
