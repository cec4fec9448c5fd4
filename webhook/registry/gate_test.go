package registry

// settle waits for a running probe: tests wait for the background probe
// they started before they look at its outcome.
func (g *gate) settle() {
	g.mu.Lock()
	ch := g.done
	g.mu.Unlock()
	if ch != nil {
		<-ch
	}
}
