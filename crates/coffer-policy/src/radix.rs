//! A compressed byte trie (radix tree) answering "which stored key is the
//! longest prefix of this path", in one walk over the path.

/// Radix tree from byte-string keys to `u32` values.
#[derive(Debug, Clone, Default)]
pub(crate) struct RadixTree {
    /// `nodes[0]` is the root (empty label) once anything is inserted.
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// The bytes on the edge leading to this node.
    label: Box<[u8]>,
    /// Children keyed (and sorted) by the first byte of their label.
    children: Vec<(u8, u32)>,
    value: Option<u32>,
}

impl RadixTree {
    /// Inserts or replaces the value of `key`.
    pub(crate) fn insert(&mut self, key: &[u8], value: u32) {
        if self.nodes.is_empty() {
            self.nodes.push(Node::default());
        }
        let mut at = 0usize;
        let mut rest = key;
        loop {
            let Some(&first) = rest.first() else {
                self.nodes[at].value = Some(value);
                return;
            };
            let pos = self.nodes[at]
                .children
                .binary_search_by_key(&first, |e| e.0);
            let child = match pos {
                Err(i) => {
                    let id = self.push(Node {
                        label: rest.into(),
                        children: Vec::new(),
                        value: Some(value),
                    });
                    self.nodes[at].children.insert(i, (first, id));
                    return;
                }
                Ok(i) => self.nodes[at].children[i].1 as usize,
            };
            let label = &self.nodes[child].label;
            let common = label.iter().zip(rest).take_while(|(a, b)| a == b).count();
            if common < label.len() {
                // Split the edge: at -> mid (common part) -> child (the rest).
                let (head, tail) = label.split_at(common);
                let (head, tail): (Box<[u8]>, Box<[u8]>) = (head.into(), tail.into());
                let mid = self.push(Node {
                    label: head,
                    children: vec![(tail[0], child as u32)],
                    value: None,
                });
                self.nodes[child].label = tail;
                if let Ok(i) = pos {
                    self.nodes[at].children[i].1 = mid;
                }
                at = mid as usize;
            } else {
                at = child;
            }
            rest = &rest[common..];
        }
    }

    fn push(&mut self, node: Node) -> u32 {
        self.nodes.push(node);
        (self.nodes.len() - 1) as u32
    }

    /// The value of the longest stored key that `path` starts with.
    pub(crate) fn longest_prefix(&self, path: &[u8]) -> Option<u32> {
        let mut node = self.nodes.first()?;
        let mut best = node.value;
        let mut rest = path;
        while let Some(first) = rest.first() {
            let Ok(i) = node.children.binary_search_by_key(first, |e| e.0) else {
                break;
            };
            let Some(child) = self.nodes.get(node.children[i].1 as usize) else {
                break;
            };
            let Some(after) = rest.strip_prefix(&*child.label) else {
                break;
            };
            rest = after;
            node = child;
            if node.value.is_some() {
                best = node.value;
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::RadixTree;
    use proptest::prelude::*;

    #[test]
    fn longest_prefix_wins() {
        let mut t = RadixTree::default();
        assert_eq!(t.longest_prefix(b"x"), None);
        for (i, k) in ["secret/", "secret/data/", "secret/data/team1/", "sys/", "s"]
            .iter()
            .enumerate()
        {
            t.insert(k.as_bytes(), i as u32);
        }
        assert_eq!(t.longest_prefix(b"secret/data/team1/x"), Some(2));
        assert_eq!(t.longest_prefix(b"secret/data/team2/x"), Some(1));
        assert_eq!(t.longest_prefix(b"secret/dat"), Some(0));
        assert_eq!(t.longest_prefix(b"sys/seal"), Some(3));
        assert_eq!(t.longest_prefix(b"sy"), Some(4));
        assert_eq!(t.longest_prefix(b"other"), None);
        t.insert(b"", 9);
        assert_eq!(t.longest_prefix(b"other"), Some(9));
    }

    proptest! {
        #[test]
        fn agrees_with_linear_scan(
            keys in prop::collection::vec("[ab/]{0,6}", 0..12),
            path in "[ab/]{0,8}",
        ) {
            let mut t = RadixTree::default();
            for (i, k) in keys.iter().enumerate() {
                t.insert(k.as_bytes(), i as u32);
            }
            // Later inserts of the same key replace earlier ones.
            let want = keys
                .iter()
                .enumerate()
                .filter(|(_, k)| path.starts_with(k.as_str()))
                .max_by_key(|(i, k)| (k.len(), *i))
                .map(|(_, k)| keys.iter().rposition(|x| x == k).unwrap_or(0) as u32);
            prop_assert_eq!(t.longest_prefix(path.as_bytes()), want);
        }
    }
}
