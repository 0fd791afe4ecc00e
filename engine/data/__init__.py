"""Data: dataset names and loaders, the sources they read, batching on the device, augmentation."""
