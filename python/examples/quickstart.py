import prifft

# Fashion-MNIST (Debian's dataset-fashion-mnist), split among 10 clients as `prifft fl` does.
train, test = prifft.load_fashion_mnist()
parts = prifft.partition(train, clients=10, beta=0.5, seed=1)

# Three rounds of FedProx with all ten clients; training runs in Rust, outside the GIL.
model = prifft.SimpleCnn.global_model("fedprox", seed=1)
for rnd in range(3):
    weights, sizes = [], []
    for client in range(10):
        local = model.local_update(train, parts[client], algo="fedprox", mu=0.01, seed=100 * rnd + client)
        weights.append(local.get_weights())
        sizes.append(len(parts[client]))
    model.set_weights(prifft.weighted_average(weights, sizes))
    print(f"round {rnd + 1}: test accuracy {model.evaluate(test):.3f}")
