//! Ordering steps by their `needs`, at step (group) level so a huge matrix costs nothing here.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A topological order of nodes `0..needs.len()`, where `needs[a]` lists the nodes `a` waits for.
/// Among nodes that are free at the same time the lowest index (file order) comes first. On failure,
/// every cycle found, each as a path of nodes starting at its lowest index (`a` needs the next one;
/// the last needs the first).
pub(crate) fn order(needs: &[Vec<usize>]) -> Result<Vec<usize>, Vec<Vec<usize>>> {
    let n = needs.len();
    let mut waiting: Vec<usize> = needs.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (a, list) in needs.iter().enumerate() {
        for &b in list {
            dependents[b].push(a);
        }
    }
    let mut done = vec![false; n];
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&a| waiting[a] == 0).map(Reverse).collect();
    let mut out = Vec::with_capacity(n);
    let mut cycles = Vec::new();
    loop {
        while let Some(Reverse(a)) = ready.pop() {
            done[a] = true;
            out.push(a);
            release(a, &dependents, &mut waiting, &done, &mut ready);
        }
        if done.iter().all(|&d| d) {
            break;
        }
        // Everything left waits on something else left, so walking `needs` must close a loop.
        let cycle = find_cycle(needs, &done);
        for &a in &cycle {
            done[a] = true;
        }
        // Treat the cycle as finished so cycles further down are found too.
        for &a in &cycle {
            release(a, &dependents, &mut waiting, &done, &mut ready);
        }
        cycles.push(cycle);
    }
    if cycles.is_empty() {
        Ok(out)
    } else {
        Err(cycles)
    }
}

fn release(
    a: usize,
    dependents: &[Vec<usize>],
    waiting: &mut [usize],
    done: &[bool],
    ready: &mut BinaryHeap<Reverse<usize>>,
) {
    for &d in &dependents[a] {
        waiting[d] -= 1;
        if waiting[d] == 0 && !done[d] {
            ready.push(Reverse(d));
        }
    }
}

fn find_cycle(needs: &[Vec<usize>], done: &[bool]) -> Vec<usize> {
    let start = (0..needs.len())
        .find(|&a| !done[a])
        .expect("a node is left");
    let mut pos = vec![usize::MAX; needs.len()];
    let mut path = Vec::new();
    let mut a = start;
    while pos[a] == usize::MAX {
        pos[a] = path.len();
        path.push(a);
        a = *needs[a]
            .iter()
            .find(|&&b| !done[b])
            .expect("a waiting node needs a node that is not done");
    }
    let mut cycle = path.split_off(pos[a]);
    let first = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
    cycle.rotate_left(first);
    cycle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_order_among_independent_nodes() {
        // 0 needs 2; 1 is free; 2 is free.
        assert_eq!(order(&[vec![2], vec![], vec![]]), Ok(vec![1, 2, 0]));
        assert_eq!(order(&[vec![], vec![], vec![]]), Ok(vec![0, 1, 2]));
        // diamond: 3 needs 1 and 2, both need 0
        assert_eq!(
            order(&[vec![], vec![0], vec![0], vec![1, 2]]),
            Ok(vec![0, 1, 2, 3])
        );
    }

    #[test]
    fn cycle_starts_at_lowest_node() {
        // 0 is free, 1 -> 2 -> 3 -> 1, 4 needs 3.
        let needs = [vec![], vec![2], vec![3], vec![1], vec![3]];
        assert_eq!(order(&needs), Err(vec![vec![1, 2, 3]]));
        // Entering the loop from a node outside it still reports only the loop.
        let needs = [vec![2], vec![], vec![3], vec![2]];
        assert_eq!(order(&needs), Err(vec![vec![2, 3]]));
    }

    #[test]
    fn several_cycles_are_all_found() {
        let needs = [vec![1], vec![0], vec![3], vec![2]];
        assert_eq!(order(&needs), Err(vec![vec![0, 1], vec![2, 3]]));
    }
}
