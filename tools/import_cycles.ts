/**
 * Finds circles in a directed graph, such as modules and their imports.
 *
 * @module
 */

/**
 * One circle per strongly connected group of nodes (Tarjan's algorithm):
 * a group of two or more nodes, or a node that points at itself. Each circle
 * is listed from its smallest node, without repeating it at the end.
 *
 * @example Two modules that import each other
 * ```ts
 * import { findCycles } from "./import_cycles.ts";
 *
 * const graph = new Map([["a", ["b"]], ["b", ["a", "c"]], ["c", []]]);
 * console.assert(JSON.stringify(findCycles(graph)) === '[["a","b"]]');
 * ```
 *
 * @param graph Each node and the nodes it points at; nodes only pointed at may be missing.
 * @returns The circles, sorted; empty when there are none.
 */
export function findCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const groups: string[][] = [];
  let next = 0;

  // Iterative, so that a deep graph cannot overflow the call stack.
  for (const start of [...graph.keys()].sort()) {
    if (index.has(start)) continue;
    const work: { node: string; edge: number }[] = [{ node: start, edge: 0 }];
    index.set(start, next);
    low.set(start, next++);
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const frame = work[work.length - 1]!;
      const edges = graph.get(frame.node) ?? [];
      if (frame.edge < edges.length) {
        const to = edges[frame.edge++]!;
        if (!index.has(to)) {
          index.set(to, next);
          low.set(to, next++);
          stack.push(to);
          onStack.add(to);
          work.push({ node: to, edge: 0 });
        } else if (onStack.has(to)) {
          low.set(frame.node, Math.min(low.get(frame.node)!, index.get(to)!));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(frame.node)!));
      if (low.get(frame.node) === index.get(frame.node)) {
        const group: string[] = [];
        let member: string;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          group.push(member);
        } while (member !== frame.node);
        const selfLoop = (graph.get(frame.node) ?? []).includes(frame.node);
        if (group.length > 1 || selfLoop) groups.push(group);
      }
    }
  }
  return groups.map((group) => circleIn(graph, new Set(group))).sort((a, b) =>
    a[0]! < b[0]! ? -1 : 1
  );
}

/** A shortest circle through the smallest node of a strongly connected group. */
function circleIn(graph: ReadonlyMap<string, readonly string[]>, group: Set<string>): string[] {
  const start = [...group].sort()[0]!;
  const previous = new Map<string, string>();
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    const node = queue[i]!;
    for (const to of [...(graph.get(node) ?? [])].sort()) {
      if (!group.has(to)) continue;
      if (to === start) {
        const circle = [node];
        while (circle[0] !== start) circle.unshift(previous.get(circle[0]!)!);
        return circle;
      }
      if (!previous.has(to)) {
        previous.set(to, node);
        queue.push(to);
      }
    }
  }
  return [start]; // unreachable for a strongly connected group
}
