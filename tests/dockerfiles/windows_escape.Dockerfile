# escape=`
# Written for defbuilder's tests: the escape directive and a Windows base image.
FROM mcr.microsoft.com/windows/servercore:ltsc2022
SHELL ["powershell", "-Command", "$ErrorActionPreference = 'Stop';"]
ENV TOOL_DIR=C:\tools
RUN New-Item -ItemType Directory -Path $env:TOOL_DIR; `
    Write-Host 'done'
CMD ["powershell"]
