package main

import "github.com/dmvpnd/dmvpnd/controller/api"

// quiet serves an empty event stream for a daemon that has none.
var quiet = api.NewBroker(0, 0)

// Subscribe passes the daemon's event stream through to the control API
// (dmvpnctl monitor), when the daemon has one.
func (c control) Subscribe() *api.Subscription {
	if es, ok := c.Source.(api.EventSource); ok {
		return es.Subscribe()
	}
	return quiet.Subscribe()
}

// RecentEvents passes the daemon's recent events through.
func (c control) RecentEvents() []api.Event {
	if es, ok := c.Source.(api.EventSource); ok {
		return es.RecentEvents()
	}
	return nil
}
