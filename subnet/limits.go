package subnet

// MTU bounds: the IPv4 minimum and the largest jumbo frame weft will program.
const (
	minMTU = 576
	maxMTU = 9000
)
