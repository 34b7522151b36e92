package consumer

// Waiters returns how many consumers wait for slots of the budget: a consume loop blocked there
// fetches nothing until a slot is given back, so a test can wait for it instead of sleeping.
func (b *Budget) Waiters() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.waiting)
}
