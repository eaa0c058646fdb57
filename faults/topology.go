package faults

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
)

// Topology is a stack's shape as fault selectors see it: its nodes with
// their role and region, its links with both ends, and which region is
// the primary. It is built from the stack descriptor before anything
// starts (faults/harnessenv.Topology), so that a scenario's targets are
// resolved, and a scenario the stack cannot serve is skipped, before a
// container exists.
type Topology struct {
	// Primary is the primary region ("" when no service has a region).
	Primary string
	// PrimaryFrom says how Primary was chosen: "descriptor" or "seed".
	PrimaryFrom string
	// Regions are the region names, sorted.
	Regions []string
	// Nodes are the stack's services.
	Nodes []TopoNode
	// Links are the stack's fault-able paths.
	Links []TopoLink
}

// TopoNode is one service of a Topology.
type TopoNode struct {
	// Name is the service name.
	Name string
	// Role is the service's role (edge, mta, store, standby, x-...).
	Role string
	// Region is the service's region ("" for a global service).
	Region string
}

// TopoLink is one link of a Topology.
type TopoLink struct {
	// Name is the link name.
	Name string
	// From is the side that opens connections: the clients or a service.
	From LinkEnd
	// To is the service the link forwards to.
	To LinkEnd
	// Protocol is the name of the upstream port (smtp, submission, imap,
	// lmtp, ...), or its number when the service does not name it.
	Protocol string
}

// LinkEnd is one side of a link.
type LinkEnd struct {
	// Name is a service name, a role (a link every service of that role
	// uses), or ClientsEnd.
	Name string
	// Role is the service's role ("" for the clients).
	Role string
	// Region is the end's region ("" for the clients, a global service, or
	// a role whose services span regions).
	Region string
}

// ClientsEnd is the From of a link the test clients use.
const ClientsEnd = "clients"

// PickPrimary returns the primary region: the declared one when it is
// set, otherwise one of regions chosen by the seed (the same seed always
// picks the same region of the same list). It returns "" when there is
// no region.
func PickPrimary(regions []string, declared string, seed int64) (region, from string) {
	if declared != "" {
		return declared, "descriptor"
	}
	if len(regions) == 0 {
		return "", ""
	}
	sorted := slices.Sorted(slices.Values(regions))
	h := fnv.New64a()
	fmt.Fprintf(h, "primary/%d", seed)
	return sorted[h.Sum64()%uint64(len(sorted))], "seed"
}

// node returns the named node.
func (t Topology) node(name string) (TopoNode, bool) {
	for _, n := range t.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return TopoNode{}, false
}

// Roles returns the roles of the stack's nodes, sorted, without repeats.
func (t Topology) Roles() []string {
	var out []string
	for _, n := range t.Nodes {
		if n.Role != "" && !slices.Contains(out, n.Role) {
			out = append(out, n.Role)
		}
	}
	slices.Sort(out)
	return out
}

// names returns the names of the candidates of a target type.
func (t Topology) names(tt TargetType) []string {
	var out []string
	switch tt {
	case TargetNode:
		for _, n := range t.Nodes {
			out = append(out, n.Name)
		}
	case TargetLink:
		for _, l := range t.Links {
			out = append(out, l.Name)
		}
	case TargetRegion:
		out = append(out, t.Regions...)
	case TargetRole:
		out = t.Roles()
	}
	slices.Sort(out)
	return out
}

// Has reports whether the topology has a target of type tt named name.
func (t Topology) Has(tt TargetType, name string) bool {
	return slices.Contains(t.names(tt), name)
}

// Describe is a one-line summary for logs and reports: regions with the
// primary marked, and how many nodes and links there are.
func (t Topology) Describe() string {
	var rs []string
	for _, r := range t.Regions {
		if r == t.Primary {
			r += " (primary, by " + t.PrimaryFrom + ")"
		}
		rs = append(rs, r)
	}
	if len(rs) == 0 {
		rs = []string{"none"}
	}
	return fmt.Sprintf("regions %s; %d nodes (roles %s); %d links",
		strings.Join(rs, ", "), len(t.Nodes), strings.Join(t.Roles(), ", "), len(t.Links))
}
