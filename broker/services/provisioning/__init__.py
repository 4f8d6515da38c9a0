"""Device provisioning, FIWARE IoT Agent compatible: config groups and devices, per tenant."""
