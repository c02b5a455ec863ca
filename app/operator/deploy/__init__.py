"""The service's deployable image (`agentvine image build`): its base image, a Debian root filesystem
made as the sandbox image is (recipe.py says what is in it), the Python packages fetched on the
host into a wheelhouse, and the Dockerfile at the top of the repository built over both (build.py).
Nothing in it needs a container registry."""
