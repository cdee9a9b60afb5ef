package fsdiff

import "sort"

// diffRange appends to out the change blocks turning x into y, whose first
// lines are xoff and yoff in the whole files. It uses Myers within the
// cost bounds, else splits the range at patience anchors.
func diffRange(x, y []int32, xoff, yoff int, out *[]block) {
	if len(x) == 0 && len(y) == 0 {
		return
	}
	if len(x) == 0 || len(y) == 0 {
		*out = append(*out, block{xoff, xoff + len(x), yoff, yoff + len(y)})
		return
	}
	maxD := min(maxEditCost, myersBudget/(len(x)+len(y)))
	if blocks, ok := myers(x, y, maxD); ok {
		for _, b := range blocks {
			*out = append(*out, block{b.A0 + xoff, b.A1 + xoff, b.B0 + yoff, b.B1 + yoff})
		}
		return
	}
	anchors := uniqueLCS(x, y)
	if len(anchors) == 0 {
		*out = append(*out, block{xoff, xoff + len(x), yoff, yoff + len(y)})
		return
	}
	pi, pj := 0, 0
	for _, a := range anchors {
		diffRange(x[pi:a[0]], y[pj:a[1]], xoff+pi, yoff+pj, out)
		pi, pj = a[0]+1, a[1]+1
	}
	diffRange(x[pi:], y[pj:], xoff+pi, yoff+pj, out)
}

// uniqueLCS returns, in order, the longest increasing chain of pairs (i, j)
// where x[i] == y[j] and that line occurs exactly once in x and once in y.
func uniqueLCS(x, y []int32) [][2]int {
	type occ struct{ nx, ny, i, j int }
	seen := map[int32]*occ{}
	for i, id := range x {
		o := seen[id]
		if o == nil {
			o = &occ{}
			seen[id] = o
		}
		o.nx++
		o.i = i
	}
	for j, id := range y {
		if o := seen[id]; o != nil {
			o.ny++
			o.j = j
		}
	}
	var pairs [][2]int
	for _, o := range seen {
		if o.nx == 1 && o.ny == 1 {
			pairs = append(pairs, [2]int{o.i, o.j})
		}
	}
	sort.Slice(pairs, func(a, b int) bool { return pairs[a][0] < pairs[b][0] })
	// Longest increasing subsequence on j (patience sorting).
	var tails []int // index into pairs of the smallest tail of each length
	back := make([]int, len(pairs))
	for k, p := range pairs {
		n := sort.Search(len(tails), func(t int) bool { return pairs[tails[t]][1] >= p[1] })
		if n > 0 {
			back[k] = tails[n-1]
		} else {
			back[k] = -1
		}
		if n == len(tails) {
			tails = append(tails, k)
		} else {
			tails[n] = k
		}
	}
	if len(tails) == 0 {
		return nil
	}
	chain := make([][2]int, len(tails))
	for k, n := tails[len(tails)-1], len(tails)-1; n >= 0; k, n = back[k], n-1 {
		chain[n] = pairs[k]
	}
	return chain
}
